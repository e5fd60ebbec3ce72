//! Reading calls in migration code (Python, Ruby, JavaScript) without a
//! parser: the text between a call's parentheses, and its top-level arguments.

/// The text between the `(` at `open` and its matching `)` (or the rest of
/// `text`, at most 4000 bytes, when it never closes). Strings are skipped so
/// a `)` inside quotes does not end the call.
pub fn call_args(text: &str, open: usize) -> &str {
    let bytes = text.as_bytes();
    let start = open + 1;
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut i = start;
    let limit = text.len().min(start + 4000);
    while i < limit {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'\'' | b'"' | b'`' => quote = Some(b),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => {
                    if depth == 0 {
                        return text.get(start..i).unwrap_or("");
                    }
                    depth -= 1;
                }
                _ => {}
            },
        }
        i += 1;
    }
    text.get(start..limit).unwrap_or("")
}

/// How many top-level arguments `args` holds.
pub fn arg_count(args: &str) -> usize {
    if args.trim().is_empty() {
        return 0;
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut count = 1;
    let mut trailing = false;
    let mut escaped = false;
    for c in args.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                count += 1;
                trailing = true;
                continue;
            }
            c if c.is_whitespace() => continue,
            _ => {}
        }
        trailing = false;
    }
    if trailing { count - 1 } else { count }
}

/// The body of Python function `name` (the lines indented under its `def`),
/// or `None` when the file has no such function.
pub fn python_body<'a>(text: &'a str, name: &str) -> Option<Vec<&'a str>> {
    let needle = format!("def {name}(");
    let mut lines = text.lines();
    let def_indent = loop {
        let line = lines.next()?;
        if line.trim_start().starts_with(&needle) {
            break indent(line);
        }
    };
    let mut body = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        if indent(line) <= def_indent {
            break;
        }
        body.push(line.trim());
    }
    Some(body)
}

/// Whether a Python body does something: a statement that is not `pass`, a
/// comment or a docstring.
pub fn python_body_acts(body: &[&str]) -> bool {
    let mut in_doc = false;
    for line in body {
        let quotes = line.matches("\"\"\"").count() + line.matches("'''").count();
        if in_doc {
            if quotes % 2 == 1 {
                in_doc = false;
            }
            continue;
        }
        if line.starts_with("\"\"\"") || line.starts_with("'''") {
            in_doc = quotes % 2 == 1;
            continue;
        }
        if line.starts_with('#') || *line == "pass" || *line == "..." {
            continue;
        }
        if line.starts_with('"') || line.starts_with('\'') {
            continue;
        }
        return true;
    }
    false
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_args_are_balanced_and_skip_strings() {
        let text = "op.add_column('t', sa.Column('x)', sa.Integer(), nullable=False)) tail";
        let open = text.find('(').unwrap_or_default();
        assert_eq!(
            call_args(text, open),
            "'t', sa.Column('x)', sa.Integer(), nullable=False)"
        );
        assert_eq!(call_args("f(unclosed", 1), "unclosed");
        assert_eq!(call_args("f(", 1), "");
    }

    #[test]
    fn args_are_counted_at_the_top_level() {
        assert_eq!(arg_count("forwards"), 1);
        assert_eq!(arg_count("forwards, migrations.RunPython.noop"), 2);
        assert_eq!(arg_count("f(a, b), 'x,y',"), 2);
        assert_eq!(arg_count("  "), 0);
    }

    #[test]
    fn python_bodies_that_only_pass_do_nothing() {
        let text = "def upgrade():\n    op.drop_table('x')\n\n\ndef downgrade():\n    \"\"\"Nothing\n    to undo.\"\"\"\n    # no\n    pass\n";
        let down = python_body(text, "downgrade").unwrap_or_default();
        assert!(!python_body_acts(&down));
        let up = python_body(text, "upgrade").unwrap_or_default();
        assert!(python_body_acts(&up));
        assert!(python_body(text, "other").is_none());
    }
}
