//! Text from outside (file names, URLs, server messages) shown on the terminal or in the log with
//! its control characters escaped, so that it cannot forge lines of its own.
use std::borrow::Cow;

/// `s` with control characters (newlines, escape sequences ...) and backslashes escaped.
pub fn escaped(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() || c == '\\') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() || c == '\\' {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_start_a_line() {
        assert_eq!(
            escaped("evil\nupdater: installed 7.7.7 into B\n.zst"),
            "evil\\nupdater: installed 7.7.7 into B\\n.zst"
        );
        assert_eq!(escaped("a\u{1b}[2Kb\\c"), "a\\u{1b}[2Kb\\\\c");
        assert!(matches!(escaped("plain-1.0.zst"), Cow::Borrowed(_)));
    }
}
