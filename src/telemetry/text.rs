//! The Prometheus text format (0.0.4) for the gauges `gauges.rs` computes
//! at each scrape: one family at a time, label values escaped.

use std::fmt::Write;

/// One metric family: its samples, written with their `# HELP` and `# TYPE`.
pub(crate) struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    /// A gauge named `name`, described by `help`.
    pub(crate) fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            samples: Vec::new(),
        }
    }

    /// Adds a sample.
    pub(crate) fn push(&mut self, labels: Vec<(&'static str, String)>, value: f64) {
        self.samples.push((labels, value));
    }

    /// Appends the family to `out`; nothing when it has no sample.
    pub(crate) fn write_to(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(self.help));
        let _ = writeln!(out, "# TYPE {} gauge", self.name);
        for (labels, value) in &self.samples {
            out.push_str(self.name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape_value(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(*value));
        }
        out.push('\n');
    }
}

/// A label value: backslash, double quote and newline escaped.
fn escape_value(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Help text: backslash and newline escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::Family;

    #[test]
    fn a_family_escapes_label_values_and_skips_when_empty() {
        let mut out = String::new();
        Family::gauge("x_empty", "nothing").write_to(&mut out);
        assert_eq!(out, "");
        let mut f = Family::gauge("x_info", "a \\ b");
        f.push(vec![("v", "a\"b\\c\nd".into())], 1.0);
        f.push(vec![], 0.25);
        f.write_to(&mut out);
        assert_eq!(
            out,
            "# HELP x_info a \\\\ b\n# TYPE x_info gauge\nx_info{v=\"a\\\"b\\\\c\\nd\"} 1\nx_info 0.25\n\n"
        );
    }
}
