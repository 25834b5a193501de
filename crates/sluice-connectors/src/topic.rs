//! MQTT topic filters, NATS subjects and the templates sinks expand into topics.

use std::fmt::Write as _;

/// Whether the MQTT topic `topic` matches the filter `filter` (`+` one level, `#` the rest).
///
/// ```
/// use sluice_connectors::topic::filter_matches;
/// assert!(filter_matches("acme/+/up", "acme/dev-1/up"));
/// assert!(filter_matches("acme/#", "acme/dev-1/up"));
/// assert!(!filter_matches("acme/+/up", "acme/dev-1/down"));
/// ```
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut levels = topic.split('/');
    for part in filter.split('/') {
        match part {
            "#" => return true,
            "+" => {
                if levels.next().is_none() {
                    return false;
                }
            }
            literal => {
                if levels.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    levels.next().is_none()
}

/// Checks that `filter` is a valid MQTT topic filter; the error says what is wrong.
pub fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("the topic filter is empty".into());
    }
    if filter.contains('\0') {
        return Err("the topic filter contains a NUL character".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "`#` must be a whole level and the last one (level {i} is `{level}`)"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "`+` must be a whole level (level {i} is `{level}`)"
            ));
        }
    }
    Ok(())
}

/// Checks a device id before it is put into a topic or subject: 1 to 128 characters, none
/// of them a wildcard, separator, space or control character.
pub fn check_device_id(device_id: &str) -> Result<(), String> {
    if device_id.is_empty() {
        return Err("the device id is empty".into());
    }
    if device_id.chars().count() > 128 {
        return Err("the device id is longer than 128 characters".into());
    }
    if let Some(c) = device_id.chars().find(|c| {
        matches!(c, '/' | '+' | '#' | '*' | '>' | '.') || c.is_whitespace() || c.is_control()
    }) {
        return Err(format!(
            "the device id contains `{}`, which cannot appear in a topic level",
            c.escape_default()
        ));
    }
    Ok(())
}

/// The values a sink's topic template can name.
#[derive(Debug, Clone, Copy)]
pub struct TemplateVars<'a> {
    /// `{tenant}`.
    pub tenant: &'a str,
    /// `{binding}`.
    pub binding: &'a str,
    /// `{device}`.
    pub device: &'a str,
    /// `{port}`.
    pub port: u16,
    /// `{output}`: the sink's output name.
    pub output: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Tenant,
    Binding,
    Device,
    Port,
    Output,
}

/// A topic or subject with `{tenant}`, `{binding}`, `{device}`, `{port}` and `{output}`
/// placeholders, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `source`; an unknown or unclosed placeholder is an error that names it.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{source}`"))?;
            pieces.push(match &after[..close] {
                "tenant" => Piece::Tenant,
                "binding" => Piece::Binding,
                "device" => Piece::Device,
                "port" => Piece::Port,
                "output" => Piece::Output,
                other => {
                    return Err(format!(
                        "unknown placeholder `{{{other}}}` (known: {{tenant}}, {{binding}}, {{device}}, {{port}}, {{output}})"
                    ));
                }
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        if source.contains('}') && !pieces.iter().any(|p| !matches!(p, Piece::Text(_))) {
            return Err(format!("unopened `}}` in `{source}`"));
        }
        Ok(Self {
            source: source.to_string(),
            pieces,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The template with every placeholder replaced.
    pub fn render(&self, vars: &TemplateVars<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Tenant => out.push_str(vars.tenant),
                Piece::Binding => out.push_str(vars.binding),
                Piece::Device => out.push_str(vars.device),
                Piece::Port => {
                    let _ = write!(out, "{}", vars.port);
                }
                Piece::Output => out.push_str(vars.output),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_like_mqtt() {
        assert!(filter_matches("a/b", "a/b"));
        assert!(!filter_matches("a/b", "a/b/c"));
        assert!(!filter_matches("a/b/c", "a/b"));
        assert!(filter_matches("a/+", "a/x"));
        assert!(!filter_matches("a/+", "a/x/y"));
        assert!(filter_matches("a/#", "a/x/y"));
        assert!(filter_matches("a/#", "a"));
        assert!(filter_matches("+/+/up", "t/d/up"));
        assert!(filter_matches("a/+/c", "a//c"));
    }

    #[test]
    fn bad_filters_are_explained() {
        assert!(check_filter("a/#").is_ok());
        assert!(check_filter("a/+/c").is_ok());
        assert_eq!(
            check_filter("a/#/c"),
            Err("`#` must be a whole level and the last one (level 1 is `#`)".into())
        );
        assert_eq!(
            check_filter("a/b+"),
            Err("`+` must be a whole level (level 1 is `b+`)".into())
        );
        assert!(check_filter("").is_err());
    }

    #[test]
    fn device_ids_that_would_break_a_topic_are_refused() {
        assert!(check_device_id("eui-70b3d57ed0001234").is_ok());
        assert!(check_device_id("a/b").is_err());
        assert!(check_device_id("a+").is_err());
        assert!(check_device_id("").is_err());
        assert!(check_device_id(&"x".repeat(129)).is_err());
    }

    #[test]
    fn templates_render_every_placeholder() {
        let t = Template::parse("{tenant}/{binding}/{device}/{port}/{output}").expect("parse");
        let vars = TemplateVars {
            tenant: "acme",
            binding: "farm",
            device: "d1",
            port: 7,
            output: "json",
        };
        assert_eq!(t.render(&vars), "acme/farm/d1/7/json");
        assert_eq!(
            Template::parse("x/{nope}"),
            Err("unknown placeholder `{nope}` (known: {tenant}, {binding}, {device}, {port}, {output})".into())
        );
        assert!(Template::parse("x/{device").is_err());
    }
}
