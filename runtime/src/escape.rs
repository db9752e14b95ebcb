//! Text that others choose — a module's log messages and stdout, a native
//! library's stderr, a client's request id — goes into the host's log, where
//! a newline, a carriage return or an escape sequence would let it forge
//! lines or fields. Control characters are written as escapes instead, so
//! one message is always one line and reads as what it is.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character (C0, DEL, C1; newline and tab
/// included) written as `\n`, `\r`, `\t` or `\u{…}`.
pub fn log_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether a client's request id may be used as it is: 1 to 128 of
/// `A-Z a-z 0-9 - _ . : /` (UUIDs, W3C trace ids, Azure ML's ids).
pub fn is_safe_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
}

/// `text` cut to at most `max` bytes on a character boundary, with `…` and
/// the number of bytes left out when it was longer.
pub fn capped(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!(
        "{}… ({} more bytes)",
        &text[..cut],
        text.len() - cut
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_start_a_line() {
        assert_eq!(log_text("plain ünïcode"), "plain ünïcode");
        assert_eq!(
            log_text("a\nINFO forged\r\0\u{1b}[31m\u{85}"),
            "a\\nINFO forged\\r\\u{0}\\u{1b}[31m\\u{85}"
        );
    }

    #[test]
    fn ids_are_restricted_and_text_is_capped() {
        assert!(is_safe_id("3f2a-11:trace/0.a_b"));
        for bad in ["", "abc method=FORGED", "a\nb", &"x".repeat(129)] {
            assert!(!is_safe_id(bad), "{bad:?}");
        }
        assert_eq!(capped("héllo", 10), "héllo");
        assert_eq!(capped("héllo", 2), "h… (5 more bytes)");
    }
}
