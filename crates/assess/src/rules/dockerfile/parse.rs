//! A Dockerfile read into instructions and stages, enough for the rules: parser
//! directives (`# escape=`), comments, line continuations, heredocs
//! (`RUN <<EOF … EOF`), `ARG` before the first `FROM` (substituted into
//! `FROM`), `FROM [--platform=…] image [AS name]`. Never fails: a line it
//! cannot make sense of is kept as an instruction with that keyword.

use std::sync::LazyLock;

use regex::Regex;

/// One instruction: its keyword (uppercase), its arguments with line
/// continuations joined and heredoc bodies appended, and its first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based.
    pub line: usize,
    pub keyword: String,
    pub args: String,
}

impl Instruction {
    /// The arguments as words (quotes removed, `--flags` included).
    pub fn words(&self) -> Vec<String> {
        words(&self.args)
    }

    /// The words that are not `--flags`.
    pub fn operands(&self) -> Vec<String> {
        self.words()
            .into_iter()
            .filter(|w| !w.starts_with("--"))
            .collect()
    }

    /// Whether a `--name` or `--name=…` flag is present.
    pub fn has_flag(&self, name: &str) -> bool {
        self.words().iter().any(|w| {
            w.strip_prefix("--")
                .is_some_and(|f| f == name || f.starts_with(&format!("{name}=")))
        })
    }
}

/// A build stage: its `FROM` and the instructions after it.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The `FROM` instruction.
    pub from: Instruction,
    /// The image, with global `ARG` defaults substituted (may still hold `$`).
    pub image: String,
    /// The `AS name`, lowercased.
    pub alias: Option<String>,
    pub instructions: Vec<Instruction>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct Dockerfile {
    /// `ARG`s before the first `FROM`.
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// The stage an alias names (case-insensitive), among those before `before`.
    pub fn stage_named(&self, name: &str, before: usize) -> Option<usize> {
        let name = name.to_ascii_lowercase();
        self.stages[..before.min(self.stages.len())]
            .iter()
            .rposition(|s| s.alias.as_deref() == Some(name.as_str()))
    }

    /// The stage a stage builds on, when its `FROM` names an earlier stage.
    pub fn parent(&self, index: usize) -> Option<usize> {
        let stage = self.stages.get(index)?;
        self.stage_named(&stage.image, index)
    }

    /// Every instruction, in order (global `ARG`s, then each stage's `FROM`
    /// and instructions).
    pub fn instructions(&self) -> impl Iterator<Item = &Instruction> {
        self.global_args.iter().chain(
            self.stages
                .iter()
                .flat_map(|s| std::iter::once(&s.from).chain(s.instructions.iter())),
        )
    }
}

static HEREDOC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_]*)["']?"#).expect("heredoc regex")
});

static VARIABLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
        .expect("variable regex")
});

/// Reads a Dockerfile's text.
pub fn parse(text: &str) -> Dockerfile {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut i = 0;
    // Parser directives: `# key=value` lines at the very top.
    while let Some(line) = lines.get(i) {
        let Some((key, value)) = line
            .trim()
            .strip_prefix('#')
            .and_then(|r| r.split_once('='))
        else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        if !matches!(key.as_str(), "escape" | "syntax" | "check") {
            break;
        }
        if key == "escape" && value.trim() == "`" {
            escape = '`';
        }
        i += 1;
    }

    let mut out = Dockerfile::default();
    while i < lines.len() {
        let first = lines[i].trim();
        if first.is_empty() || first.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut logical = String::new();
        loop {
            let current = lines[i].trim_end();
            i += 1;
            match current.strip_suffix(escape) {
                Some(joined) => {
                    logical.push_str(joined);
                    logical.push(' ');
                    // Comments and blank lines inside a continuation are skipped.
                    while lines
                        .get(i)
                        .is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
                    {
                        i += 1;
                    }
                    if i >= lines.len() {
                        break;
                    }
                }
                None => {
                    logical.push_str(current);
                    break;
                }
            }
        }
        let logical = logical.trim();
        let (keyword, args) = match logical.split_once(char::is_whitespace) {
            Some((k, a)) => (k.to_ascii_uppercase(), a.trim().to_string()),
            None => (logical.to_ascii_uppercase(), String::new()),
        };
        let mut args = args;
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            let delimiters: Vec<(bool, String)> = HEREDOC
                .captures_iter(&args)
                .map(|c| (&c[1] == "-", c[3].to_string()))
                .collect();
            for (strip_tabs, delimiter) in delimiters {
                let is_end = |line: &str| {
                    let end = if strip_tabs {
                        line.trim_start_matches('\t')
                    } else {
                        line
                    };
                    end.trim_end() == delimiter
                };
                // A `<<WORD` with no closing line is not a heredoc.
                let Some(len) = lines[i..].iter().position(|l| is_end(l)) else {
                    continue;
                };
                for line in &lines[i..i + len] {
                    args.push('\n');
                    args.push_str(line);
                }
                i += len + 1;
            }
        }
        let instruction = Instruction {
            line: start + 1,
            keyword,
            args,
        };
        if instruction.keyword == "FROM" {
            let operands = instruction.operands();
            let raw = operands.first().cloned().unwrap_or_default();
            let alias = match operands.get(1) {
                Some(w) if w.eq_ignore_ascii_case("as") => {
                    operands.get(2).map(|a| a.to_ascii_lowercase())
                }
                _ => None,
            };
            let image = substitute(&raw, &out.global_args);
            out.stages.push(Stage {
                from: instruction,
                image,
                alias,
                instructions: Vec::new(),
            });
        } else {
            match out.stages.last_mut() {
                Some(stage) => stage.instructions.push(instruction),
                None if instruction.keyword == "ARG" => out.global_args.push(instruction),
                // Anything else before FROM is invalid; it is dropped.
                None => {}
            }
        }
    }
    out
}

/// `KEY=value` pairs of an `ENV`, `ARG` or `LABEL` (the legacy `ENV KEY value`
/// form too); a pair without `=` has no value.
pub fn pairs(instruction: &Instruction) -> Vec<(String, Option<String>)> {
    let words = instruction.words();
    let legacy = instruction.keyword == "ENV"
        && words.first().is_some_and(|w| !w.contains('='))
        && words.len() > 1;
    if legacy {
        let key = words[0].clone();
        let value = words[1..].join(" ");
        return vec![(key, Some(value))];
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        })
        .collect()
}

/// Substitutes `$NAME`, `${NAME}` and `${NAME:-default}` from `ARG` defaults;
/// what cannot be resolved is left as written.
pub fn substitute(text: &str, args: &[Instruction]) -> String {
    let mut defaults: Vec<(String, Option<String>)> = Vec::new();
    for arg in args {
        defaults.extend(pairs(arg));
    }
    VARIABLE
        .replace_all(text, |c: &regex::Captures<'_>| {
            let name = c.get(1).or_else(|| c.get(4)).map_or("", |m| m.as_str());
            let value = defaults
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
                .filter(|v| !v.is_empty());
            match (value, c.get(2).map(|m| m.as_str())) {
                (Some(v), Some("+")) => c.get(3).map_or(v, |m| m.as_str().to_string()),
                (Some(v), _) => v,
                (None, Some("-")) => c.get(3).map_or("", |m| m.as_str()).to_string(),
                (None, Some("+")) => String::new(),
                (None, _) => c[0].to_string(),
            }
        })
        .into_owned()
}

/// Splits arguments into words: whitespace separates, quotes group, and the
/// quotes are removed. JSON arrays (`["a", "b"]`) come out as their strings.
pub fn words(args: &str) -> Vec<String> {
    let args = args.trim();
    if let Some(inner) = args.strip_prefix('[').and_then(|a| a.strip_suffix(']'))
        && let Ok(list) = serde_json::from_str::<Vec<String>>(&format!("[{inner}]"))
    {
        return list;
    }
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for ch in args.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => current.push(ch),
            None if ch == '"' || ch == '\'' => {
                quote = Some(ch);
                in_word = true;
            }
            None if ch.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            None => {
                current.push(ch);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_args_and_aliases() {
        let text = "# syntax=docker/dockerfile:1\nARG GO_VERSION=1.22.5\nFROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS Build\nRUN go build \\\n    # a comment inside\n    -o /app .\n\nFROM build\nUSER 1000\n";
        let df = parse(text);
        assert_eq!(df.global_args.len(), 1);
        assert_eq!(df.stages.len(), 2);
        assert_eq!(df.stages[0].image, "golang:1.22.5-bookworm");
        assert_eq!(df.stages[0].alias.as_deref(), Some("build"));
        assert_eq!(df.stages[0].from.line, 3);
        let run = &df.stages[0].instructions[0];
        assert_eq!((run.keyword.as_str(), run.line), ("RUN", 4));
        assert_eq!(run.args, "go build      -o /app .");
        assert_eq!(df.parent(1), Some(0));
        assert_eq!(df.stages[1].instructions[0].line, 9);
    }

    #[test]
    fn heredocs_and_the_escape_directive() {
        let text = "# escape=`\nFROM alpine:3.19.1\nRUN <<EOF\nset -e\napk add curl \\\nEOF\nCOPY a `\n  b /\nUSER app\n";
        let df = parse(text);
        let s = &df.stages[0];
        let kinds: Vec<(&str, usize)> = s
            .instructions
            .iter()
            .map(|i| (i.keyword.as_str(), i.line))
            .collect();
        assert_eq!(kinds, [("RUN", 3), ("COPY", 7), ("USER", 9)]);
        assert!(s.instructions[0].args.contains("apk add curl"));
        assert_eq!(s.instructions[1].operands(), ["a", "b", "/"]);
    }

    #[test]
    fn a_shift_or_an_unclosed_heredoc_swallows_nothing() {
        let df = parse("FROM x\nRUN echo $((1 << 3)) a << b\nRUN cat <<EOF > f\nUSER app\n");
        let kinds: Vec<(&str, usize)> = df.stages[0]
            .instructions
            .iter()
            .map(|i| (i.keyword.as_str(), i.line))
            .collect();
        assert_eq!(kinds, [("RUN", 2), ("RUN", 3), ("USER", 4)]);
    }

    #[test]
    fn env_pairs_in_both_forms() {
        let df = parse("FROM x\nENV A=1 B=\"two words\"\nENV LEGACY some value\nARG TOKEN\n");
        let i = &df.stages[0].instructions;
        assert_eq!(
            pairs(&i[0]),
            [
                ("A".to_string(), Some("1".to_string())),
                ("B".to_string(), Some("two words".to_string()))
            ]
        );
        assert_eq!(
            pairs(&i[1]),
            [("LEGACY".to_string(), Some("some value".to_string()))]
        );
        assert_eq!(pairs(&i[2]), [("TOKEN".to_string(), None)]);
    }

    #[test]
    fn substitution_keeps_what_it_cannot_resolve() {
        let args = parse("ARG A=1\nARG B\nFROM x").global_args;
        assert_eq!(substitute("n:${A}-$B", &args), "n:1-$B");
        assert_eq!(substitute("n:${B:-2}", &args), "n:2");
        assert_eq!(words(r#"["npm", "ci"]"#), ["npm", "ci"]);
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "",
            "\\",
            "FROM",
            "RUN <<EOF",
            "# escape=`\n`",
            "\u{feff}FROM x\n",
            "FROM x AS",
            "ENV",
            "ARG =",
            "\0\0\0",
        ] {
            let _ = parse(text);
        }
        let long = "RUN ".to_string() + &"a\\\n".repeat(10_000);
        assert_eq!(parse(&long).stages.len(), 0);
    }
}
