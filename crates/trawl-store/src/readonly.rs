//! Read-only SQL: what a statement from the network may do.
//!
//! Two checks, one before planning and one after, so neither a parser
//! corner nor a planner corner lets a write through:
//!
//! 1. [`check_statement`] looks at the parsed statement (DataFusion's own
//!    parser, so the decision is made on the syntax tree, never on the
//!    text) and admits only an allow-list: queries (`SELECT`, `WITH`,
//!    `VALUES`), `EXPLAIN` of an admitted statement, `DESCRIBE`, and the
//!    `SHOW` forms DataFusion answers from `information_schema`. Anything
//!    else (`COPY`, `CREATE …`, `INSERT`, `SET`, `PREPARE`, transactions, …)
//!    is refused with its kind named, before a plan exists, so no table
//!    factory, file or session setting is touched.
//!    `SELECT … INTO` (which creates a table) is refused here too.
//! 2. [`check_plan`] runs DataFusion's [`SQLOptions`] (no DDL, no DML, no
//!    statements) over the plan and checks that every table it scans is
//!    one the engine registered or a table function from
//!    [`TABLE_FUNCTIONS_ALLOWED`] (`range`, `generate_series`: neither
//!    reads files), so a file-reading function registered later is refused
//!    until someone adds it here on purpose. It also refuses the functions
//!    in [`FUNCTIONS_DENIED`]: their output size grows with an argument
//!    (`repeat('x', 1e11)`) or with every row (`array_agg`), and they
//!    allocate outside DataFusion's memory pool, so one call could take the
//!    process down.
//!
//! [`redact`] removes the data directory from text a client will read
//! (EXPLAIN output, error messages): DataFusion prints segment paths, with
//! and without their leading `/`.

use datafusion::common::TableReference;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{SetExpr, Statement};

/// Table functions a read-only query may call: they generate rows and
/// read nothing.
pub const TABLE_FUNCTIONS_ALLOWED: [&str; 2] = ["range", "generate_series"];

/// Functions a read-only query may not call: each can allocate without
/// bound outside the memory pool (see the module header).
pub const FUNCTIONS_DENIED: [&str; 9] = [
    "repeat",
    "lpad",
    "rpad",
    "array_repeat",
    "array_resize",
    "range",
    "generate_series",
    "array_agg",
    "string_agg",
];

/// Why a statement was refused: the kind of statement (`COPY`, `CREATE
/// EXTERNAL TABLE`, `SET`, …) or the plan node that is not read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What was refused, as the user would name it.
    pub kind: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read-only SQL: {} is not allowed (only SELECT, WITH, VALUES, EXPLAIN, SHOW and DESCRIBE)",
            self.kind
        )
    }
}

/// Admits `statement` when it only reads (see the module header).
pub fn check_statement(statement: &DfStatement) -> Result<(), Refusal> {
    match statement {
        DfStatement::Statement(inner) => check_sql_statement(inner),
        DfStatement::Explain(explain) => check_statement(&explain.statement),
        DfStatement::CreateExternalTable(_) => Err(refused("CREATE EXTERNAL TABLE")),
        DfStatement::CopyTo(_) => Err(refused("COPY")),
        DfStatement::Reset(_) => Err(refused("RESET")),
    }
}

fn check_sql_statement(statement: &Statement) -> Result<(), Refusal> {
    match statement {
        Statement::Query(query) => check_set_expr(&query.body),
        Statement::ExplainTable { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowCreate { .. } => Ok(()),
        Statement::Explain { statement, .. } => check_sql_statement(statement),
        other => Err(refused(&statement_kind(other))),
    }
}

/// A query's body may hide a write: `SELECT … INTO t`, or DML in a set
/// operation.
fn check_set_expr(body: &SetExpr) -> Result<(), Refusal> {
    match body {
        SetExpr::Select(select) if select.into.is_some() => Err(refused("SELECT INTO")),
        SetExpr::Query(query) => check_set_expr(&query.body),
        SetExpr::SetOperation { left, right, .. } => {
            check_set_expr(left)?;
            check_set_expr(right)
        }
        SetExpr::Insert(statement)
        | SetExpr::Update(statement)
        | SetExpr::Delete(statement)
        | SetExpr::Merge(statement) => Err(refused(&statement_kind(statement))),
        _ => Ok(()),
    }
}

/// The leading keywords of a statement as sqlparser prints it (`CREATE
/// TABLE`, `INSERT INTO`, `SET`): for the message only; the decision is
/// made on the syntax tree.
fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .take(4)
        .collect();
    if words.is_empty() {
        "this statement".to_string()
    } else {
        words.join(" ")
    }
}

fn refused(kind: &str) -> Refusal {
    Refusal {
        kind: kind.to_string(),
    }
}

/// Checks a planned statement: no DDL, DML or session statements
/// (DataFusion's [`SQLOptions`]), and every scanned table either one of
/// `tables` (the engine's own, and `information_schema`) or an allowed
/// table function. Subqueries are walked too.
pub fn check_plan(plan: &LogicalPlan, tables: &[String]) -> Result<(), Refusal> {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(plan)
        .map_err(|e| refused(&plan_refusal(&e.strip_backtrace())))?;
    let mut outcome = Ok(());
    let walked = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && !scan_allowed(&scan.table_name, tables)
        {
            let name = scan.table_name.to_string();
            outcome = Err(refused(&format!("reading table {name:?}")));
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Some(name) = denied_function(e) {
                    outcome = Err(refused(&format!(
                        "function {name} (its output size has no bound)"
                    )));
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    if let Err(e) = walked {
        return Err(refused(&format!("a plan that cannot be checked ({e})")));
    }
    outcome
}

/// `verify_plan` says e.g. "DDL not supported: CreateMemoryTable"; the
/// part after the colon names the node.
fn plan_refusal(message: &str) -> String {
    let tail = message
        .rsplit("Error during planning: ")
        .next()
        .unwrap_or(message);
    tail.trim().to_string()
}

/// The name of the function `expr` calls, when it is one of
/// [`FUNCTIONS_DENIED`].
fn denied_function(expr: &Expr) -> Option<&str> {
    let name = match expr {
        Expr::ScalarFunction(f) => f.name(),
        Expr::AggregateFunction(f) => f.func.name(),
        _ => return None,
    };
    FUNCTIONS_DENIED
        .iter()
        .any(|d| d.eq_ignore_ascii_case(name))
        .then_some(name)
}

/// Whether a scan of `name` reads only what the engine serves: its own
/// tables (in the default catalog and schema), `information_schema`, or an
/// allowed table function (planned as a bare `NAME()`).
fn scan_allowed(name: &TableReference, tables: &[String]) -> bool {
    let catalog_ok = name.catalog().is_none_or(|c| c == "datafusion");
    match name.schema() {
        Some("information_schema") => catalog_ok,
        Some("public") | None => {
            if name.schema().is_none()
                && let Some(function) = name.table().strip_suffix("()")
            {
                return TABLE_FUNCTIONS_ALLOWED.contains(&function);
            }
            catalog_ok && tables.iter().any(|t| t == name.table())
        }
        Some(_) => false,
    }
}

/// `text` with the data directory `data_dir` (absolute) replaced by
/// `<data_dir>`, also where it is printed without its leading `/`.
pub fn redact(text: &str, data_dir: &str) -> String {
    let trimmed = data_dir.trim_start_matches('/');
    if trimmed.is_empty() {
        return text.to_string();
    }
    text.replace(data_dir, "<data_dir>")
        .replace(trimmed, "<data_dir>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn check(sql: &str) -> Result<(), Refusal> {
        let mut statements = DFParser::parse_sql(sql).expect("parses");
        assert_eq!(statements.len(), 1, "{sql}");
        check_statement(&statements.pop_front().expect("one"))
    }

    #[test]
    fn queries_explain_show_and_describe_pass() {
        for sql in [
            "SELECT 1",
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "VALUES (1), (2)",
            "EXPLAIN SELECT 1",
            "EXPLAIN ANALYZE SELECT 1",
            "SHOW TABLES",
            "SHOW COLUMNS FROM flows_1m",
            "SHOW ALL",
            "DESCRIBE flows_1m",
            "SELECT count(*) FROM range(10)",
        ] {
            assert_eq!(check(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn every_writing_statement_is_refused_with_its_kind() {
        for (sql, kind) in [
            ("COPY (SELECT 1 AS x) TO '/tmp/x.csv' STORED AS CSV", "COPY"),
            (
                "CREATE EXTERNAL TABLE p (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE EXTERNAL TABLE",
            ),
            ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("DROP TABLE flows_1m", "DROP TABLE"),
            ("INSERT INTO flows_1m VALUES (1)", "INSERT INTO"),
            ("DELETE FROM flows_1m", "DELETE FROM"),
            ("UPDATE flows_1m SET bytes = 0", "UPDATE"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("RESET datafusion.execution.batch_size", "RESET"),
            ("PREPARE p AS SELECT 1", "PREPARE"),
            ("BEGIN TRANSACTION", "BEGIN"),
            ("EXPLAIN COPY (SELECT 1) TO '/tmp/y.csv'", "COPY"),
            ("EXPLAIN INSERT INTO flows_1m VALUES (1)", "INSERT INTO"),
            ("SELECT 1 AS x INTO t", "SELECT INTO"),
            ("SELECT 1 UNION ALL (SELECT 2 INTO t)", "SELECT INTO"),
        ] {
            let refusal = check(sql).expect_err(sql);
            assert!(
                refusal.kind.starts_with(kind),
                "{sql}: {refusal} (expected {kind})"
            );
        }
    }

    #[test]
    fn a_scan_is_allowed_only_of_known_tables_and_generators() {
        let tables = vec!["flows_1m".to_string()];
        for (name, allowed) in [
            (TableReference::bare("flows_1m"), true),
            (TableReference::partial("public", "flows_1m"), true),
            (
                TableReference::full("datafusion", "public", "flows_1m"),
                true,
            ),
            (TableReference::full("other", "public", "flows_1m"), false),
            (TableReference::partial("x", "flows_1m"), false),
            (
                TableReference::partial("information_schema", "tables"),
                true,
            ),
            (
                TableReference::full("datafusion", "information_schema", "tables"),
                true,
            ),
            (TableReference::bare("range()"), true),
            (TableReference::bare("parquet_metadata()"), false),
            (TableReference::bare("/etc/passwd"), false),
            (TableReference::bare("flows_1h"), false),
        ] {
            assert_eq!(scan_allowed(&name, &tables), allowed, "{name}");
        }
    }

    #[test]
    fn the_data_directory_is_redacted_with_and_without_its_slash() {
        let dir = "/tmp/x/data";
        assert_eq!(
            redact(
                "file_groups={[tmp/x/data/flows_1m/1-0.parquet]} at /tmp/x/data/y",
                dir
            ),
            "file_groups={[<data_dir>/flows_1m/1-0.parquet]} at <data_dir>/y"
        );
        assert_eq!(redact("nothing here", dir), "nothing here");
    }
}
