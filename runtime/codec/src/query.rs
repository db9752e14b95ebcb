//! `GET /score?a=1&b=x` as Azure ML passes it to `run()`: a JSON object of
//! the query parameters. A value that parses as JSON (a number, `true`, a
//! quoted string, an array) keeps its JSON type; anything else is a string;
//! a repeated key becomes an array of its values.

use serde_json::{Map, Value};

/// Turns a raw query string into a JSON object body.
pub fn query_to_json(query: &str) -> Value {
    let mut out = Map::new();
    for (k, v) in form_pairs(query) {
        let value = serde_json::from_str::<Value>(&v).unwrap_or(Value::String(v));
        match out.get_mut(&k) {
            Some(Value::Array(items)) => items.push(value),
            Some(first) => {
                let prev = first.take();
                *first = Value::Array(vec![prev, value]);
            }
            None => {
                out.insert(k, value);
            }
        }
    }
    Value::Object(out)
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_keep_json_types() {
        assert_eq!(
            query_to_json("a=1&b=x&c=%5B1%2C2%5D&d=true&e=hello+world"),
            json!({"a": 1, "b": "x", "c": [1, 2], "d": true, "e": "hello world"})
        );
    }

    #[test]
    fn repeated_keys_collect_and_bad_escapes_survive() {
        assert_eq!(query_to_json("k=1&k=2&k=3"), json!({"k": [1, 2, 3]}));
        assert_eq!(
            query_to_json("p=100%&q=%zz"),
            json!({"p": "100%", "q": "%zz"})
        );
        assert_eq!(query_to_json(""), json!({}));
    }
}
