//! Locking or breaking schema operations in migrations written as code
//! (Alembic, Django, Rails), found by pattern: cutover's SQL linter cannot
//! read them. Only the up part is read (a down migration drops by design),
//! and an index or column on a table the same migration creates is fine.

use std::sync::LazyLock;

use regex::Regex;

use super::pyargs::{arg_count, call_args};
use super::tools::Tool;
use crate::repo::line_of;

/// What kind of problem an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// A NOT NULL column added without a default.
    NotNullNoDefault,
    /// An index built without CONCURRENTLY (PostgreSQL).
    IndexNotConcurrent,
    /// A column's type changed in place (a table rewrite).
    TypeChange,
    /// A column or table dropped while the running release may use it.
    Drop,
}

/// One operation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub kind: OpKind,
    /// 1-based.
    pub line: usize,
    /// The call, e.g. `op.add_column`.
    pub call: String,
}

static ALEMBIC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(?:op|batch_op)\.(add_column|create_index|alter_column|drop_column|drop_table)\s*\(",
    )
    .expect("regex")
});
static DJANGO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(AddField|AddIndex|RemoveField|DeleteModel)\s*\(").expect("regex")
});
static RAILS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(add_column|add_index|change_column|remove_column|drop_table)\b")
        .expect("regex")
});
static CREATED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:create_table|CreateModel)\s*\(?\s*(?:name\s*=\s*)?[:'"](\w+)"#).expect("regex")
});

/// The dangerous operations of a migration of `tool` (Alembic, Django,
/// Rails; nothing for other tools). Index rules apply on PostgreSQL only.
pub fn scan(tool: Tool, text: &str, postgres: bool) -> Vec<Op> {
    let up = up_part(tool, text);
    let created: Vec<String> = CREATED
        .captures_iter(up)
        .map(|c| c[1].to_ascii_lowercase())
        .collect();
    let on_new_table = |args: &str| {
        let lower = args.to_ascii_lowercase();
        created.iter().any(|t| {
            lower.contains(&format!("'{t}'"))
                || lower.contains(&format!("\"{t}\""))
                || lower.contains(&format!(":{t}"))
        })
    };
    let mut ops = Vec::new();
    match tool {
        Tool::Alembic => {
            for c in ALEMBIC.captures_iter(up) {
                let (Some(all), Some(name)) = (c.get(0), c.get(1)) else {
                    continue;
                };
                let args = call_args(up, all.end() - 1);
                let kind = match name.as_str() {
                    "add_column"
                        if args.contains("nullable=False") && !args.contains("server_default") =>
                    {
                        OpKind::NotNullNoDefault
                    }
                    "create_index"
                        if postgres
                            && !args.contains("postgresql_concurrently=True")
                            && !on_new_table(args) =>
                    {
                        OpKind::IndexNotConcurrent
                    }
                    "alter_column" if args.contains("type_=") => OpKind::TypeChange,
                    "drop_column" | "drop_table" => OpKind::Drop,
                    _ => continue,
                };
                ops.push(Op {
                    kind,
                    line: line_of(up, all.start()),
                    call: format!("op.{}", name.as_str()),
                });
            }
        }
        Tool::Django => {
            for c in DJANGO.captures_iter(up) {
                let (Some(all), Some(name)) = (c.get(0), c.get(1)) else {
                    continue;
                };
                let args = call_args(up, all.end() - 1);
                let kind = match name.as_str() {
                    "AddField"
                        if !args.contains("null=True")
                            && !args.contains("default=")
                            && !args.contains("ManyToManyField") =>
                    {
                        OpKind::NotNullNoDefault
                    }
                    "AddIndex" if postgres && !on_new_table(args) => OpKind::IndexNotConcurrent,
                    "RemoveField" | "DeleteModel" => OpKind::Drop,
                    _ => continue,
                };
                ops.push(Op {
                    kind,
                    line: line_of(up, all.start()),
                    call: format!("migrations.{}", name.as_str()),
                });
            }
        }
        Tool::Rails => {
            let lines: Vec<&str> = up.lines().collect();
            let mut i = 0;
            while i < lines.len() {
                let start = i;
                let mut stmt = lines[i].to_string();
                while stmt.trim_end().ends_with(',') && i + 1 < lines.len() {
                    i += 1;
                    stmt.push(' ');
                    stmt.push_str(lines[i].trim());
                }
                i += 1;
                let Some(c) = RAILS.captures(&stmt) else {
                    continue;
                };
                let Some(name) = c.get(1) else { continue };
                let kind = match name.as_str() {
                    "add_column" if stmt.contains("null: false") && !stmt.contains("default:") => {
                        OpKind::NotNullNoDefault
                    }
                    "add_index"
                        if postgres
                            && !stmt.contains("algorithm: :concurrently")
                            && !on_new_table(&stmt) =>
                    {
                        OpKind::IndexNotConcurrent
                    }
                    "change_column" => OpKind::TypeChange,
                    "remove_column" | "drop_table" => OpKind::Drop,
                    _ => continue,
                };
                ops.push(Op {
                    kind,
                    line: start + 1,
                    call: name.as_str().to_string(),
                });
            }
        }
        _ => {}
    }
    ops
}

/// The text before the down part (`def downgrade` / `def down`), so line
/// numbers stay those of the file.
fn up_part(tool: Tool, text: &str) -> &str {
    let marker = match tool {
        Tool::Alembic => "def downgrade(",
        Tool::Rails => "def down",
        _ => return text,
    };
    match text.find(marker) {
        Some(i) => &text[..i],
        None => text,
    }
}

/// Whether a Django migration's RunPython / RunSQL calls can be reversed;
/// the line of the first that cannot.
pub fn django_irreversible(text: &str) -> Option<usize> {
    static RUN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\b(RunPython|RunSQL)\s*\(").expect("regex"));
    for c in RUN.captures_iter(text) {
        let (Some(all), Some(name)) = (c.get(0), c.get(1)) else {
            continue;
        };
        let args = call_args(text, all.end() - 1);
        let reverse = if name.as_str() == "RunPython" {
            "reverse_code"
        } else {
            "reverse_sql"
        };
        if arg_count(args) < 2 && !args.contains(reverse) {
            return Some(line_of(text, all.start()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alembic_operations_in_upgrade_only() {
        let text = "def upgrade():\n    op.create_table('orders', sa.Column('id', sa.Integer()))\n    op.create_index('ix_orders_id', 'orders', ['id'])\n    op.create_index('ix_users_email', 'users', ['email'])\n    op.add_column('users', sa.Column('plan', sa.String(), nullable=False))\n    op.add_column('users', sa.Column('tier', sa.String(), nullable=False, server_default='free'))\n    op.alter_column('users', 'age', type_=sa.BigInteger())\n\n\ndef downgrade():\n    op.drop_column('users', 'plan')\n";
        let ops = scan(Tool::Alembic, text, true);
        let got: Vec<(OpKind, usize)> = ops.iter().map(|o| (o.kind, o.line)).collect();
        assert_eq!(
            got,
            [
                (OpKind::IndexNotConcurrent, 4),
                (OpKind::NotNullNoDefault, 5),
                (OpKind::TypeChange, 7)
            ]
        );
        assert!(
            scan(Tool::Alembic, text, false)
                .iter()
                .all(|o| o.kind != OpKind::IndexNotConcurrent)
        );
    }

    #[test]
    fn django_and_rails_operations() {
        let django = "operations = [\n    migrations.AddField(\n        model_name='user',\n        name='plan',\n        field=models.CharField(max_length=10),\n    ),\n    migrations.AddField(model_name='user', name='x', field=models.IntegerField(default=0)),\n    migrations.RemoveField(model_name='user', name='old'),\n]\n";
        let got: Vec<(OpKind, usize)> = scan(Tool::Django, django, true)
            .iter()
            .map(|o| (o.kind, o.line))
            .collect();
        assert_eq!(got, [(OpKind::NotNullNoDefault, 2), (OpKind::Drop, 8)]);

        let rails = "class X < ActiveRecord::Migration[7.1]\n  def up\n    add_column :users, :plan, :string,\n      null: false\n    add_index :users, :email\n    add_index :users, :plan, algorithm: :concurrently\n    change_column :users, :age, :bigint\n  end\n\n  def down\n    remove_column :users, :plan\n  end\nend\n";
        let got: Vec<(OpKind, usize)> = scan(Tool::Rails, rails, true)
            .iter()
            .map(|o| (o.kind, o.line))
            .collect();
        assert_eq!(
            got,
            [
                (OpKind::NotNullNoDefault, 3),
                (OpKind::IndexNotConcurrent, 5),
                (OpKind::TypeChange, 7)
            ]
        );
    }

    #[test]
    fn django_run_python_needs_reverse_code() {
        assert_eq!(
            django_irreversible("ops = [\n  migrations.RunPython(forwards),\n]"),
            Some(2)
        );
        assert_eq!(
            django_irreversible("migrations.RunPython(forwards, migrations.RunPython.noop)"),
            None
        );
        assert_eq!(
            django_irreversible("migrations.RunSQL('UPDATE x', reverse_sql='UPDATE y')"),
            None
        );
        assert_eq!(
            django_irreversible("migrations.RunSQL(sql='UPDATE x')"),
            Some(1)
        );
    }
}
