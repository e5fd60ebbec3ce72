//! YAML with line numbers, for the rules that read compose files, CI
//! workflows and Kubernetes manifests: every node keeps the 1-based line it
//! starts on, so a finding can point at it. Built on yaml-rust2's event
//! parser; anchors and aliases resolve to null (rules never need them), and a
//! document that does not parse yields the documents before the error.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One YAML value and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A mapping, keys in document order (keys are scalars as text).
    Map(Vec<(Key, Node)>),
    Seq(Vec<Node>),
    /// A scalar as written (`true`, `80`, `"x"` all as text); null is `Null`.
    Scalar(String),
    Null,
}

/// A mapping key and its line.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub text: String,
    pub line: usize,
}

impl Node {
    /// The value under `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key and value under `key` when this is a mapping.
    pub fn entry(&self, key: &str) -> Option<(&Key, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.text == key)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// Follows a path of keys: `node.path(&["spec", "template", "spec"])`.
    pub fn path(&self, keys: &[&str]) -> Option<&Node> {
        keys.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The entries when this is a mapping (empty otherwise).
    pub fn entries(&self) -> &[(Key, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The items when this is a sequence (empty otherwise).
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    /// The text when this is a scalar.
    pub fn str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// Every node below this one (itself included), depth first.
    pub fn walk(&self) -> Vec<&Node> {
        let mut out = vec![self];
        let mut i = 0;
        while i < out.len() {
            let node = out[i];
            match &node.value {
                Value::Map(entries) => out.extend(entries.iter().map(|(_, v)| v)),
                Value::Seq(items) => out.extend(items.iter()),
                _ => {}
            }
            i += 1;
        }
        out
    }
}

/// Parses every document of `text`. A syntax error ends the list there.
pub fn parse(text: &str) -> Vec<Node> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    // An error keeps the documents finished before it.
    let _ = parser.load(&mut builder, true);
    builder.docs
}

/// Parses the first document of `text`, if there is one.
pub fn parse_one(text: &str) -> Option<Node> {
    parse(text).into_iter().next()
}

enum Frame {
    Map {
        line: usize,
        entries: Vec<(Key, Node)>,
        key: Option<Key>,
    },
    Seq {
        line: usize,
        items: Vec<Node>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Node>,
}

impl Builder {
    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => {
                    let text = match node.value {
                        Value::Scalar(s) => s,
                        _ => String::new(),
                    };
                    *key = Some(Key {
                        text,
                        line: node.line,
                    });
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(s, style, _, _) => {
                let plain = matches!(style, yaml_rust2::scanner::TScalarStyle::Plain);
                let value = if plain && (s.is_empty() || s == "~" || s == "null") {
                    Value::Null
                } else {
                    Value::Scalar(s)
                };
                self.push_value(Node { line, value });
            }
            Event::Alias(_) => self.push_value(Node {
                line,
                value: Value::Null,
            }),
            Event::MappingStart(..) => self.stack.push(Frame::Map {
                line,
                entries: Vec::new(),
                key: None,
            }),
            Event::SequenceStart(..) => self.stack.push(Frame::Seq {
                line,
                items: Vec::new(),
            }),
            Event::MappingEnd | Event::SequenceEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Map { line, entries, .. }) => Node {
                        line,
                        value: Value::Map(entries),
                    },
                    Some(Frame::Seq { line, items }) => Node {
                        line,
                        value: Value::Seq(items),
                    },
                    None => return,
                };
                self.push_value(node);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_lines() {
        let text = "services:\n  web:\n    image: app:latest\n    ports:\n      - \"80:80\"\n";
        let doc = parse_one(text).expect("doc");
        let web = doc.path(&["services", "web"]).expect("web");
        assert_eq!(web.get("image").and_then(Node::str), Some("app:latest"));
        assert_eq!(web.get("image").map(|n| n.line), Some(3));
        let port = &web.get("ports").expect("ports").items()[0];
        assert_eq!((port.str(), port.line), (Some("80:80"), 5));
        let (key, _) = web.entry("ports").expect("entry");
        assert_eq!(key.line, 4);
    }

    #[test]
    fn several_documents_and_a_broken_tail() {
        let docs = parse("a: 1\n---\nb: [x, y]\n---\nc: [unclosed\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].get("b").map(|n| n.items().len()), Some(2));
        assert_eq!(docs[1].line, 3);
    }

    #[test]
    fn null_values() {
        let doc = parse_one("a:\nb: ~\nc: ''\n").expect("doc");
        assert_eq!(doc.get("a").map(|n| &n.value), Some(&Value::Null));
        assert_eq!(doc.get("b").map(|n| &n.value), Some(&Value::Null));
        assert_eq!(doc.get("c").and_then(Node::str), Some(""));
    }
}
