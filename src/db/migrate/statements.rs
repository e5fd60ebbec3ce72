//! Splitting a migration part into statements, each with the line of the
//! file it starts on, so that a failure names its statement and line and a
//! statement can be retried on its own.
//!
//! The text is tokenized by `squawk-lexer` (PostgreSQL's lexical rules:
//! quoted strings and identifiers, `$tag$` dollar quotes, nested block
//! comments), so a `;` inside a string, an identifier, a comment or a
//! function body does not end a statement. `BEGIN … END` blocks of a
//! trigger (SQLite) or of a `BEGIN ATOMIC` function (PostgreSQL) and `CASE
//! … END` are kept whole as well.

use squawk_lexer::TokenKind;

use super::files::Part;

/// One statement of a migration part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement, without the `;` that ends it and without the comments
    /// and blank lines before it.
    pub sql: String,
    /// The 1-based line of the file it starts on.
    pub line: usize,
}

/// The statements of `part`, in order. Parts of only comments have none.
pub fn split(part: &Part) -> Vec<Statement> {
    let sql = part.sql.as_str();
    let mut statements = Vec::new();
    let mut position = 0usize;
    // The byte range of the statement so far: its first and past its last token.
    let mut current: Option<(usize, usize)> = None;
    let mut depth = 0usize;
    let mut push = |start: usize, end: usize| {
        statements.push(Statement {
            sql: sql[start..end].to_owned(),
            line: part.first_line + sql[..start].matches('\n').count(),
        });
    };
    for token in squawk_lexer::tokenize(sql) {
        let start = position;
        position += token.len as usize;
        match token.kind {
            TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment { .. } => {}
            TokenKind::Semi if depth == 0 => {
                if let Some((first, last)) = current.take() {
                    push(first, last);
                }
            }
            kind => {
                let first_token = current.is_none();
                let first = current.map_or(start, |(first, _)| first);
                current = Some((first, position));
                if kind == TokenKind::Ident {
                    let word = &sql[start..position];
                    if (word.eq_ignore_ascii_case("begin") && !first_token)
                        || word.eq_ignore_ascii_case("case")
                    {
                        depth += 1;
                    } else if word.eq_ignore_ascii_case("end") {
                        depth = depth.saturating_sub(1);
                    }
                }
            }
        }
    }
    if let Some((first, last)) = current {
        push(first, last);
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(sql: &str, first_line: usize) -> Vec<(String, usize)> {
        split(&Part {
            sql: sql.to_owned(),
            first_line,
        })
        .into_iter()
        .map(|statement| (statement.sql, statement.line))
        .collect()
    }

    #[test]
    fn splits_on_semicolons_with_lines() {
        let sql = "-- cutover:phase expand\nCREATE TABLE a (id int);\n\n/* two\n lines */ INSERT INTO a VALUES (1);  SELECT 2\n";
        assert_eq!(
            statements(sql, 1),
            [
                ("CREATE TABLE a (id int)".to_owned(), 2),
                ("INSERT INTO a VALUES (1)".to_owned(), 5),
                ("SELECT 2".to_owned(), 5),
            ]
        );
        assert_eq!(statements("SELECT 1;", 10), [("SELECT 1".to_owned(), 10)]);
        assert!(statements("-- nothing\n/* at all */\n;\n", 1).is_empty());
    }

    #[test]
    fn semicolons_in_strings_identifiers_comments_and_bodies_do_not_split() {
        let sql = r#"INSERT INTO t VALUES ('a;b', "c;d"); -- e;f
CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;
/* g; /* nested; */ h; */ SELECT 1;
"#;
        let got = statements(sql, 1);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[1].1, 2);
        assert!(got[1].0.ends_with("LANGUAGE plpgsql"), "{got:?}");
        assert_eq!(got[2], ("SELECT 1".to_owned(), 3));
    }

    #[test]
    fn trigger_and_case_blocks_stay_whole() {
        let sql = "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE b SET n = n + 1;\n  DELETE FROM c;\nEND;\nSELECT CASE WHEN 1 THEN 2 END;\nBEGIN;\nCOMMIT;\n";
        let got = statements(sql, 1);
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[0].0.ends_with("END"), "{got:?}");
        assert_eq!(got[1].1, 5);
        assert_eq!(got[2], ("BEGIN".to_owned(), 6));
        assert_eq!(got[3], ("COMMIT".to_owned(), 7));
    }
}
