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
/// characters; an offset inside a character counts from its start). For many
/// lookups in one text, build a [`LineIndex`] once.
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    LineIndex::new(text).line_col(pos)
}

/// Bytes per checkpoint of the character count in [`LineIndex`].
const BLOCK: usize = 64;

/// Line and column lookups in one text in logarithmic time each, so locating
/// every one of thousands of entries stays linear in the file (a hostile
/// repository's file is parsed by the prompt hook).
pub struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
    /// Characters before each `BLOCK`-byte block.
    chars_before_block: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Index `text` in one pass.
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        let mut chars_before_block = Vec::with_capacity(bytes.len() / BLOCK + 1);
        let mut chars = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if i % BLOCK == 0 {
                chars_before_block.push(chars);
            }
            if b == b'\n' {
                line_starts.push(i + 1);
            }
            if !is_continuation(b) {
                chars += 1;
            }
        }
        LineIndex { text, line_starts, chars_before_block }
    }

    /// 1-based line and column (in characters) of byte offset `pos`, as [`line_col`].
    pub fn line_col(&self, pos: usize) -> (usize, usize) {
        let mut pos = pos.min(self.text.len());
        while pos > 0 && !self.text.is_char_boundary(pos) {
            pos -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= pos);
        let start = self.line_starts[line - 1];
        (line, self.chars_before(pos) - self.chars_before(start) + 1)
    }

    /// Characters in `text[..pos]`.
    fn chars_before(&self, pos: usize) -> usize {
        let block = pos / BLOCK;
        let Some(&before) = self.chars_before_block.get(block) else { return 0 };
        before + self.text.as_bytes()[block * BLOCK..pos].iter().filter(|&&b| !is_continuation(b)).count()
    }
}

/// A UTF-8 continuation byte (not the start of a character).
fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// `s` safe to show on a terminal: control characters (other than newline
/// and tab) and bidirectional overrides are written as `\x1b` / `\u{202e}`,
/// so a directory name, provider title or upstream answer cannot move the
/// cursor, retitle the window or reorder what the user reads.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// [`printable`], with newlines and tabs escaped too: a value shown inside
/// one line of a summary (a `[run.env]` value, a command) cannot start a
/// line of its own and pass for something authsome said.
pub fn one_line(s: &str) -> String {
    printable(s).replace('\n', "\\n").replace('\t', "\\t")
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
    fn one_line_escapes_line_breaks_too() {
        assert_eq!(one_line("a\n  proxy  b\tc\x1b"), "a\\n  proxy  b\\tc\\x1b");
    }

    #[test]
    fn printable_escapes_controls_and_bidi_overrides() {
        assert_eq!(printable("a\x1b]0;t\x07b\nc\td\u{9b}e\u{202e}f é"), "a\\x1b]0;t\\x07b\nc\td\\u{9b}e\\u{202e}f é");
    }

    #[test]
    fn positions_count_characters_and_lines() {
        assert_eq!(line_col("ab\ncé\nx", 7), (3, 1));
        assert_eq!(line_col("ab\ncéd", 6), (2, 3));
        assert_eq!(line_col("é", 1), (1, 1), "inside a character");
        assert_eq!(line_col("ab", 99), (1, 3), "past the end");
        assert_eq!(line_col("", 0), (1, 1));
        let long = format!("{}\n{}é{}", "x".repeat(100), "é".repeat(70), "y".repeat(100));
        let idx = LineIndex::new(&long);
        for pos in 0..=long.len() {
            let prefix = &long[..(0..=pos).rev().find(|&p| long.is_char_boundary(p)).unwrap()];
            let expected = (prefix.matches('\n').count() + 1, prefix.rsplit('\n').next().unwrap().chars().count() + 1);
            assert_eq!(idx.line_col(pos), expected, "at {pos}");
        }
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
