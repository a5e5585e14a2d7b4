//! Small text helpers every layer shares, one of each: hex, variable names,
//! positions in a file, shell quoting, loopback hosts, and how a connection
//! is named in messages.

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// POSIX-portable variable name: a letter or `_`, then letters, digits or `_`.
pub fn valid_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// 1-based line and column of byte offset `pos` in `text` (columns count
/// characters; an offset inside a character counts from its start).
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let mut pos = pos.min(text.len());
    while pos > 0 && !text.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Quote `s` for a POSIX shell when it needs it (commands shown to users).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-:,=+@%".contains(&b)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Loopback names and addresses, where plain http is acceptable.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `github`, or `github (work)` when a connection is named: how messages name a connection.
pub fn connection_label(provider: &str, connection: Option<&str>) -> String {
    match connection {
        Some(c) => format!("{provider} ({c})"),
        None => provider.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_and_lines() {
        assert_eq!(line_col("ab\ncé\nx", 7), (3, 1));
        assert_eq!(line_col("ab\ncéd", 6), (2, 3));
        assert_eq!(line_col("é", 1), (1, 1), "inside a character");
        assert_eq!(line_col("ab", 99), (1, 3), "past the end");
    }

    #[test]
    fn helpers() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert!(valid_env_name("_A1") && !valid_env_name("1A") && !valid_env_name("A-B") && !valid_env_name(""));
        assert_eq!(connection_label("github", Some("work")), "github (work)");
        assert_eq!(connection_label("github", None), "github");
    }

    #[test]
    fn quoting_is_only_added_when_needed() {
        assert_eq!(shell_quote("/home/me/bot"), "/home/me/bot");
        assert_eq!(shell_quote("/home/me/my bot"), "'/home/me/my bot'");
        assert_eq!(shell_quote("/it's"), "'/it'\\''s'");
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("localhost") && is_loopback_host("127.0.0.2") && is_loopback_host("[::1]"));
        assert!(!is_loopback_host("example.com") && !is_loopback_host("10.0.0.1"));
    }
}
