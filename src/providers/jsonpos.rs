//! Maps a JSON pointer to the line and column where its value starts, so that
//! semantic errors can be reported as `file:line:column` like syntax errors are.
//!
//! A tiny scanner over already-valid JSON (serde has parsed it first), not a parser.

/// 1-based (line, column) of the value at `pointer` in `text`, or of the closest
/// existing ancestor when the pointer names something absent.
pub fn locate(text: &str, pointer: &str) -> (usize, usize) {
    let tokens: Vec<String> = pointer.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
    let bytes = text.as_bytes();
    let mut pos = skip_ws(bytes, 0);
    for tok in &tokens {
        match find_child(bytes, pos, tok) {
            Some(p) => pos = p,
            None => break,
        }
    }
    crate::text::line_col(text, pos)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Offset just past the JSON value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> usize {
    let mut i = skip_ws(b, i);
    if i >= b.len() {
        return i;
    }
    match b[i] {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = skip_string(b, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            i
        }
        _ => {
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']') && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            i
        }
    }
}

fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// Start of the child value named `tok` inside the container at `pos`.
fn find_child(b: &[u8], pos: usize, tok: &str) -> Option<usize> {
    let open = *b.get(pos)?;
    let mut i = pos + 1;
    let mut index = 0usize;
    loop {
        i = skip_ws(b, i);
        if i >= b.len() || b[i] == b'}' || b[i] == b']' {
            return None;
        }
        if open == b'{' {
            let end = skip_string(b, i);
            let key: String = serde_json::from_slice(&b[i..end]).ok()?;
            i = skip_ws(b, end);
            i = skip_ws(b, i + 1); // past ':'
            if key == tok {
                return Some(i);
            }
        } else if open == b'[' {
            if tok.parse::<usize>().ok() == Some(index) {
                return Some(i);
            }
            index += 1;
        } else {
            return None;
        }
        i = skip_ws(b, skip_value(b, i));
        if b.get(i) == Some(&b',') {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::locate;

    #[test]
    fn finds_nested_values_and_array_items() {
        let text = "{\n  \"a\": 1,\n  \"oauth\": {\n    \"token_url\": \"http://x\"\n  },\n  \"l\": [\"p\", \"q\"]\n}";
        assert_eq!(locate(text, "/oauth/token_url"), (4, 18));
        assert_eq!(locate(text, "/l/1"), (6, 14));
        assert_eq!(locate(text, "/a"), (2, 8));
    }

    #[test]
    fn missing_members_fall_back_to_the_parent() {
        let text = "{\"oauth\": {\"x\": \"}\"}}";
        assert_eq!(locate(text, "/oauth/token_url"), (1, 11));
    }
}
