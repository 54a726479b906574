//! What changed between two JSON values, field by field (two states of a record, or an answer
//! then and now), and a JSON value laid out as lines with the changed ones marked. Pure.
//!
//! Places are JSON Pointers (RFC 6901): `/absences/0/state`. Arrays are compared by index,
//! objects by key; a value added or removed as a whole is one change at its own place.

use std::collections::HashSet;

use serde_json::Value;

/// One difference at a place.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Added(Value),
    Removed(Value),
    Changed(Value, Value),
}

/// Every difference between `before` and `after`: the places both have and those only
/// `before` has in key order, then those only `after` has.
pub fn diff(before: &Value, after: &Value) -> Vec<(String, Change)> {
    let mut out = Vec::new();
    walk(before, after, &mut String::new(), &mut out);
    out
}

fn walk(before: &Value, after: &Value, at: &mut String, out: &mut Vec<(String, Change)>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, old) in a {
                let len = at.len();
                push_key(at, key);
                match b.get(key) {
                    Some(new) => walk(old, new, at, out),
                    None => out.push((at.clone(), Change::Removed(old.clone()))),
                }
                at.truncate(len);
            }
            for (key, new) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                let len = at.len();
                push_key(at, key);
                out.push((at.clone(), Change::Added(new.clone())));
                at.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let len = at.len();
                push_key(at, &i.to_string());
                match (a.get(i), b.get(i)) {
                    (Some(old), Some(new)) => walk(old, new, at, out),
                    (Some(old), None) => out.push((at.clone(), Change::Removed(old.clone()))),
                    (None, Some(new)) => out.push((at.clone(), Change::Added(new.clone()))),
                    (None, None) => {}
                }
                at.truncate(len);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push((at.clone(), Change::Changed(a.clone(), b.clone()))),
    }
}

/// `key` appended to a pointer, escaped as RFC 6901 says.
fn push_key(at: &mut String, key: &str) {
    at.push('/');
    at.push_str(&key.replace('~', "~0").replace('/', "~1"));
}

/// One line of a value laid out for reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub depth: usize,
    /// `"key": `, or empty in an array or at the top.
    pub key: String,
    /// A scalar, an opening `{`/`[` (or `{}`/`[]`), or a closing `}`/`]`.
    pub text: String,
    /// Where the line's value is (a closing line: its container).
    pub pointer: String,
}

/// `value` as indented lines, each knowing its place.
pub fn lines(value: &Value) -> Vec<Line> {
    let mut out = Vec::new();
    lay_out(value, 0, String::new(), &mut String::new(), &mut out);
    out
}

fn lay_out(value: &Value, depth: usize, key: String, at: &mut String, out: &mut Vec<Line>) {
    let line = |text: String, key: String, at: &str| Line {
        depth,
        key,
        text,
        pointer: at.to_string(),
    };
    match value {
        Value::Object(fields) if !fields.is_empty() => {
            out.push(line("{".into(), key, at));
            for (k, v) in fields {
                let len = at.len();
                push_key(at, k);
                let label = format!("{}: ", Value::String(k.clone()));
                lay_out(v, depth + 1, label, at, out);
                at.truncate(len);
            }
            out.push(line("}".into(), String::new(), at));
        }
        Value::Array(items) if !items.is_empty() => {
            out.push(line("[".into(), key, at));
            for (i, v) in items.iter().enumerate() {
                let len = at.len();
                push_key(at, &i.to_string());
                lay_out(v, depth + 1, String::new(), at, out);
                at.truncate(len);
            }
            out.push(line("]".into(), String::new(), at));
        }
        scalar => out.push(line(scalar.to_string(), key, at)),
    }
}

/// Whether `pointer` is at or below one of the places in `changed`.
pub fn is_marked(pointer: &str, changed: &HashSet<&str>) -> bool {
    if changed.contains(pointer) {
        return true;
    }
    let mut rest = pointer;
    while let Some(cut) = rest.rfind('/') {
        rest = &rest[..cut];
        if changed.contains(rest) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_diff_names_each_field_that_changed_was_added_or_removed() {
        let before =
            json!({"state": "pending", "reason": "病假", "dates": ["2026-03-12"], "a/b": 1});
        let after = json!({"state": "approved", "reason": "病假", "dates": ["2026-03-12", "2026-03-13"], "by": "boss"});
        assert_eq!(
            diff(&before, &after),
            // Keys in order (serde_json's maps are sorted), the removed among them; the added
            // after.
            vec![
                ("/a~1b".into(), Change::Removed(json!(1))),
                ("/dates/1".into(), Change::Added(json!("2026-03-13"))),
                (
                    "/state".into(),
                    Change::Changed(json!("pending"), json!("approved"))
                ),
                ("/by".into(), Change::Added(json!("boss"))),
            ]
        );
        assert!(diff(&after, &after).is_empty());
        assert_eq!(
            diff(&json!(null), &json!({"x": 1})),
            vec![("".into(), Change::Changed(json!(null), json!({"x": 1})))]
        );
    }

    #[test]
    fn lines_know_their_place_and_marks_cover_what_lies_below_a_change() {
        let value = json!({"absences": [{"id": 1, "state": "approved"}], "n": 1});
        let laid: Vec<(String, String)> = lines(&value)
            .into_iter()
            .map(|l| {
                (
                    format!("{}{}{}", "  ".repeat(l.depth), l.key, l.text),
                    l.pointer,
                )
            })
            .collect();
        assert_eq!(laid[0], ("{".into(), "".into()));
        assert_eq!(laid[1], ("  \"absences\": [".into(), "/absences".into()));
        assert_eq!(laid[3], ("      \"id\": 1".into(), "/absences/0/id".into()));
        assert_eq!(
            laid[4],
            (
                "      \"state\": \"approved\"".into(),
                "/absences/0/state".into()
            )
        );
        assert_eq!(laid.last().unwrap().0, "}");
        let changed: HashSet<&str> = ["/absences/0"].into_iter().collect();
        assert!(is_marked("/absences/0/state", &changed));
        assert!(is_marked("/absences/0", &changed));
        assert!(!is_marked("/absences", &changed));
        assert!(!is_marked("/absences/01", &changed));
        assert!(!is_marked("/n", &changed));
    }
}
