//! Shell-specific quoting of the statements `authsome export` prints.
//!
//! Every value goes through single quotes, the one quoting form in which each
//! shell interprets (almost) nothing: bash and zsh need only `'` escaped (as
//! `'\''`); fish also treats `\` specially inside single quotes. Newlines, `$`,
//! backquotes and unicode pass through literally in all three.

use super::Shell;

/// `value` as one single-quoted word for `shell` (bash, zsh or fish).
pub fn quote(shell: Shell, value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match (shell, c) {
            (Shell::Fish, '\\') => out.push_str("\\\\"),
            (Shell::Fish, '\'') => out.push_str("\\'"),
            (_, '\'') => out.push_str("'\\''"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Whether `name` can be exported by every supported shell (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The statement that exports `name=value` in `shell`.
pub fn set(shell: Shell, name: &str, value: &str) -> String {
    match shell {
        Shell::Fish => format!("set -gx {name} {};\n", quote(shell, value)),
        _ => format!("export {name}={};\n", quote(shell, value)),
    }
}

/// The statement that removes `name` from `shell`'s environment.
pub fn unset(shell: Shell, name: &str) -> String {
    match shell {
        Shell::Fish => format!("set -e -g {name};\n"),
        _ => format!("unset {name};\n"),
    }
}

/// The statement that sets the shell-local (unexported) variable `name`.
pub fn set_local(shell: Shell, name: &str, value: &str) -> String {
    match shell {
        Shell::Fish => format!("set -g {name} {};\n", quote(shell, value)),
        Shell::Zsh => format!("typeset -g {name}={};\n", quote(shell, value)),
        _ => format!("{name}={};\n", quote(shell, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_quotes_only_single_quote() {
        assert_eq!(quote(Shell::Bash, "a'b"), r"'a'\''b'");
        assert_eq!(quote(Shell::Zsh, "$x \\ \n é"), "'$x \\ \n é'");
    }

    #[test]
    fn fish_escapes_backslash_and_quote() {
        assert_eq!(quote(Shell::Fish, r"a\b'c"), r"'a\\b\'c'");
        assert_eq!(quote(Shell::Fish, "$x\n"), "'$x\n'");
    }

    #[test]
    fn names() {
        assert!(valid_name("HTTPS_PROXY"));
        assert!(valid_name("_x1"));
        assert!(!valid_name("1X"));
        assert!(!valid_name("A-B"));
        assert!(!valid_name(""));
        assert!(!valid_name("A;rm"));
    }
}
