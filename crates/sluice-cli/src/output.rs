//! Small formatting helpers shared by the commands.

use std::path::{Path, PathBuf};

/// A byte count for people: `61.2 KiB (62668 bytes)`.
pub fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let value = bytes as f64;
    if value >= KIB * KIB {
        format!("{:.1} MiB ({bytes} bytes)", value / (KIB * KIB))
    } else if value >= KIB {
        format!("{:.1} KiB ({bytes} bytes)", value / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// A byte count in its largest whole unit: `16 MiB`, `1.5 KiB`, `512 B`.
pub fn size_short(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let value = bytes as f64;
    let (scaled, unit) = if value >= KIB * KIB {
        (value / (KIB * KIB), "MiB")
    } else if value >= KIB {
        (value / KIB, "KiB")
    } else {
        return format!("{bytes} B");
    };
    if scaled.fract() == 0.0 {
        format!("{scaled:.0} {unit}")
    } else {
        format!("{scaled:.1} {unit}")
    }
}

/// Hex with a space between bytes: `03 67 01 10`.
pub fn spaced_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A path as the user would type it: without a leading `./`.
pub fn display_path(path: &Path) -> PathBuf {
    path.strip_prefix(".").unwrap_or(path).to_path_buf()
}

/// An integer with thousands separators: `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(2048), "2.0 KiB (2048 bytes)");
        assert_eq!(size_short(16 * 1024 * 1024), "16 MiB");
        assert_eq!(size_short(1536), "1.5 KiB");
        assert_eq!(size_short(100), "100 B");
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn hex_is_spaced_and_upper_case() {
        assert_eq!(spaced_hex(&[3, 0x67, 1, 0x10]), "03 67 01 10");
    }

    #[test]
    fn leading_dot_is_dropped() {
        assert_eq!(
            display_path(Path::new("./target/sluice/a.wasm")),
            PathBuf::from("target/sluice/a.wasm")
        );
    }
}
