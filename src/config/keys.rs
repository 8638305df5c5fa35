//! Keys given twice in one object of the config file (runs on the main thread
//! at boot, after the file parsed).
//!
//! A JSON parser keeps the last of two equal keys without a word, so a
//! duplicated service or field would silently lose its first definition. The
//! syntax tree still has both, with their positions.

use super::ConfigProblem;
use jsonc_parser::ast::{Object, Value};

/// Every key given twice in an object of `text` (which parsed with `opts`),
/// with its JSON path and the line and column of both.
pub(super) fn duplicates(text: &str, opts: &jsonc_parser::ParseOptions) -> Vec<ConfigProblem> {
    let collect = jsonc_parser::CollectOptions::default();
    let Ok(parsed) = jsonc_parser::parse_to_ast(text, &collect, opts) else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(v) = &parsed.value {
        walk(text, v, "", &mut out);
    }
    out
}

fn walk(text: &str, v: &Value, at: &str, out: &mut Vec<ConfigProblem>) {
    match v {
        Value::Object(o) => object(text, o, at, out),
        Value::Array(a) => {
            for (i, e) in a.elements.iter().enumerate() {
                walk(text, e, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn object(text: &str, o: &Object, at: &str, out: &mut Vec<ConfigProblem>) {
    for (i, prop) in o.properties.iter().enumerate() {
        let key = prop.name.as_str();
        let path = if at.is_empty() { key.to_string() } else { format!("{at}.{key}") };
        let first = o.properties[..i].iter().find(|p| p.name.as_str() == key);
        if let Some(first) = first {
            let (line, column) = position(text, prop.range.start);
            let (first_line, first_column) = position(text, first.range.start);
            out.push(ConfigProblem::DuplicateKey {
                at: path.clone(),
                line,
                column,
                first_line,
                first_column,
            });
        }
        walk(text, &prop.value, &path, out);
    }
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use std::path::Path;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("f.jsonc"), Path::new("/base")) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn a_key_given_twice_is_named_with_its_path_and_both_positions() {
        let text = "{\n  \"services\": {\n    \"api\": { \"cmd\": \"a\", \"port\": 1,\n      \"port\": 2 },\n    \"é\": { \"cmd\": \"b\" }, \"é\": { \"cmd\": \"c\" }\n  }\n}";
        assert_eq!(
            problems(text),
            vec![
                "services.api.port: key given twice (at line 3:26 and again at line 4:7)",
                "services.é: key given twice (at line 5:5 and again at line 5:26)",
                "service name \"é\" is invalid: use letters, digits, '.', '_' and '-' only",
            ]
        );
    }

    #[test]
    fn equal_keys_in_different_objects_are_fine() {
        let text =
            r#"{"services":{"a":{"cmd":"x","env":{"K":"1"}},"b":{"cmd":"x","env":{"K":"2"}}}}"#;
        assert_eq!(problems(text), Vec::<String>::new());
    }
}
