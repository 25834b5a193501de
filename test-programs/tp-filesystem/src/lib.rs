//! A codec that reads the filesystem. Using `std::fs` makes its component import
//! `wasi:filesystem`, which the host does not provide: it must refuse the component at load.
//! If it ever ran, it returns what it saw: `{"root": [names] | "error", "passwd": text | "error"}`.

use sluice_sdk::{Codec, CodecError, Uplink, Value, json};

/// Lists `/` and reads `/etc/passwd`.
struct Filesystem;

impl Codec for Filesystem {
    fn decode(_msg: &Uplink) -> Result<Value, CodecError> {
        let root = match std::fs::read_dir("/") {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                json!(names)
            }
            Err(e) => json!(format!("error: {e}")),
        };
        let passwd = match std::fs::read("/etc/passwd") {
            Ok(bytes) => json!(String::from_utf8_lossy(&bytes)),
            Err(e) => json!(format!("error: {e}")),
        };
        Ok(json!({ "root": root, "passwd": passwd }))
    }
}

sluice_sdk::export_codec!(Filesystem);
