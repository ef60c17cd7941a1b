//! Migration JSON -> validated DDL, and the schema model it leaves behind.
//!
//! Every name is checked ([`crate::sql::is_valid_name`]) and quoted, every type comes from
//! the whitelist of [`SqlType::parse`], and default and check literals are validated
//! against their column's type before being rendered. Statements are idempotent
//! (`IF NOT EXISTS`) so a half-applied step can be re-run.

use eerp_abi::migration::{
    AddColumn, Check, CheckOp, Column, ColumnDefault, CreateIndex, CreateTable, DefaultFunction,
    IndexType, Migration, Operation, SqlType,
};
use serde_json::Value;

use super::MigrationError;
use super::model::{BUILTIN_COLUMNS, ColumnModel, SchemaModel, TableModel};
use crate::sql::{MAX_NAME_LEN, is_decimal, is_valid_name, qualified, quote_ident, quote_literal};

/// One step, ready to run.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    /// The step's version.
    pub version: u32,
    /// The step's entity text.
    pub entity: String,
    /// The step as JSON, recorded in the history to detect later edits.
    pub json: Value,
    /// DDL statements, in order.
    pub statements: Vec<String>,
}

/// Plans every step for `schema` and returns the final model.
///
/// # Errors
/// [`MigrationError`] naming the step and what is wrong with it.
pub fn plan(
    schema: &str,
    migrations: &[Migration],
) -> Result<(Vec<PlannedStep>, SchemaModel), MigrationError> {
    check_versions(migrations)?;
    let mut model = SchemaModel::default();
    let mut steps = Vec::with_capacity(migrations.len());
    for step in migrations {
        let mut planner = Planner {
            schema,
            version: step.version,
            model: &mut model,
            statements: Vec::new(),
        };
        for operation in &step.operations {
            planner.operation(operation)?;
        }
        let statements = planner.statements;
        steps.push(PlannedStep {
            version: step.version,
            entity: step.entity.clone(),
            json: recorded_json(step)?,
            statements,
        });
    }
    Ok((steps, model))
}

impl SchemaModel {
    /// The model the migrations declare (validating them on the way).
    ///
    /// # Errors
    /// As [`plan`].
    pub fn from_migrations(migrations: &[Migration]) -> Result<Self, MigrationError> {
        plan("validation", migrations).map(|(_, model)| model)
    }
}

/// The step as recorded in the history: without the ignored `data` member, so editing
/// it does not count as changing a released step.
fn recorded_json(step: &Migration) -> Result<Value, MigrationError> {
    let mut json = serde_json::to_value(step).map_err(|e| MigrationError::Json(e.to_string()))?;
    if let Value::Object(map) = &mut json {
        map.remove("data");
    }
    Ok(json)
}

fn check_versions(migrations: &[Migration]) -> Result<(), MigrationError> {
    let versions: Vec<u32> = migrations.iter().map(|m| m.version).collect();
    let increasing = versions.first().is_none_or(|v| *v >= 1)
        && versions.windows(2).all(|pair| pair[0] < pair[1]);
    if increasing {
        Ok(())
    } else {
        Err(MigrationError::Versions(versions))
    }
}

struct Planner<'a> {
    schema: &'a str,
    version: u32,
    model: &'a mut SchemaModel,
    statements: Vec<String>,
}

impl Planner<'_> {
    fn invalid(&self, message: impl Into<String>) -> MigrationError {
        MigrationError::Invalid {
            version: self.version,
            message: message.into(),
        }
    }

    fn name(&self, kind: &str, name: &str) -> Result<(), MigrationError> {
        if is_valid_name(name) {
            Ok(())
        } else {
            Err(self.invalid(format!(
                "{kind} name `{name}` is invalid: use 1 to {MAX_NAME_LEN} of [a-z0-9_], starting with a letter, without `__` or a trailing `_`"
            )))
        }
    }

    fn operation(&mut self, operation: &Operation) -> Result<(), MigrationError> {
        match operation {
            Operation::CreateTable(table) => self.create_table(table),
            Operation::AddColumn(add) => self.add_column(add),
            Operation::CreateIndex(index) => self.create_index(index),
        }
    }

    fn table_ref(&self, table: &str) -> String {
        qualified(self.schema, table)
    }

    /// The original format creates any table it names, with the built-in columns.
    fn ensure_table(&mut self, table: &str) -> Result<(), MigrationError> {
        self.name("table", table)?;
        if self.model.tables.contains_key(table) {
            return Ok(());
        }
        self.statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.table_ref(table),
            builtin_column_ddl()
        ));
        self.model
            .tables
            .insert(table.to_string(), TableModel::new(table));
        Ok(())
    }

    fn create_table(&mut self, spec: &CreateTable) -> Result<(), MigrationError> {
        let table = spec.table.as_str();
        self.name("table", table)?;
        if self.model.tables.contains_key(table) {
            return Err(self.invalid(format!("table `{table}` already exists")));
        }
        let mut model = TableModel::new(table);
        let mut parts = vec![builtin_column_ddl()];
        let mut after = Vec::new();
        for column in &spec.columns {
            let (ddl, column_model) = self.column_ddl(&model, column)?;
            parts.push(ddl);
            if column.unique {
                after.push(self.unique_index(
                    table,
                    std::slice::from_ref(&column.name),
                    &column.name,
                ));
                model.unique.push(vec![column.name.clone()]);
            }
            model.columns.push(column_model);
        }
        for (n, check) in spec.checks.iter().enumerate() {
            let expr = self.check_expr(&model, check)?;
            parts.push(format!(
                "CONSTRAINT {} CHECK ({expr})",
                quote_ident(&format!("ck_{table}__{n}"))
            ));
        }
        for (n, columns) in spec.unique.iter().enumerate() {
            if columns.is_empty() {
                return Err(self.invalid(format!("empty unique constraint on `{table}`")));
            }
            if let Some(missing) = columns.iter().find(|c| model.column(c).is_none()) {
                return Err(self.invalid(format!("unique on unknown column `{table}.{missing}`")));
            }
            after.push(self.unique_index(table, columns, &n.to_string()));
            model.unique.push(columns.clone());
        }
        self.statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.table_ref(table),
            parts.join(", ")
        ));
        self.statements.extend(after);
        self.model.tables.insert(table.to_string(), model);
        Ok(())
    }

    fn column_ddl(
        &self,
        table: &TableModel,
        column: &Column,
    ) -> Result<(String, ColumnModel), MigrationError> {
        let name = column.name.as_str();
        self.name("column", name)?;
        if table.column(name).is_some() {
            let reserved = if BUILTIN_COLUMNS.contains(&name) {
                " (reserved: the host manages it)"
            } else {
                ""
            };
            return Err(self.invalid(format!(
                "column `{}.{name}` is declared twice{reserved}",
                table.name
            )));
        }
        let (ty, type_not_null) = SqlType::parse(&column.sql_type)
            .map_err(|e| self.invalid(format!("column `{}.{name}`: {e}", table.name)))?;
        let not_null = column.not_null || type_not_null;
        let mut ddl = format!("{} {}", quote_ident(name), ty.as_sql());
        if not_null {
            ddl.push_str(" NOT NULL");
        }
        if let Some(default) = &column.default {
            let rendered = self.default_sql(&table.name, name, ty, default)?;
            ddl.push_str(&format!(" DEFAULT {rendered}"));
        }
        if let Some(target) = &column.references {
            if ty != SqlType::Uuid {
                return Err(self.invalid(format!(
                    "column `{}.{name}` references `{target}` and so must be of type uuid",
                    table.name
                )));
            }
            if target != &table.name && !self.model.tables.contains_key(target) {
                return Err(self.invalid(format!(
                    "column `{}.{name}` references unknown table `{target}`; foreign keys stay inside the module",
                    table.name
                )));
            }
            ddl.push_str(&format!(" REFERENCES {} (\"id\")", self.table_ref(target)));
        }
        let model = ColumnModel {
            name: name.to_string(),
            ty,
            not_null,
            has_default: column.default.is_some(),
            builtin: false,
        };
        Ok((ddl, model))
    }

    fn default_sql(
        &self,
        table: &str,
        column: &str,
        ty: SqlType,
        default: &ColumnDefault,
    ) -> Result<String, MigrationError> {
        match default {
            ColumnDefault::Literal(value) => literal(ty, value)
                .map_err(|why| self.invalid(format!("default of `{table}.{column}`: {why}"))),
            ColumnDefault::Function(DefaultFunction::Now) if ty == SqlType::Timestamptz => {
                Ok("now()".into())
            }
            ColumnDefault::Function(DefaultFunction::Now) if ty == SqlType::Date => {
                Ok("CURRENT_DATE".into())
            }
            ColumnDefault::Function(DefaultFunction::GenRandomUuid) if ty == SqlType::Uuid => {
                Ok("gen_random_uuid()".into())
            }
            ColumnDefault::Function(function) => Err(self.invalid(format!(
                "default function {function:?} does not fit `{table}.{column}` of type {}",
                ty.as_sql()
            ))),
        }
    }

    fn check_expr(&self, table: &TableModel, check: &Check) -> Result<String, MigrationError> {
        let column = table.column(&check.column).ok_or_else(|| {
            self.invalid(format!(
                "check on unknown column `{}.{}`",
                table.name, check.column
            ))
        })?;
        let bad =
            |why: String| self.invalid(format!("check on `{}.{}`: {why}", table.name, column.name));
        let quoted = quote_ident(&column.name);
        if check.op == CheckOp::In {
            let values = check
                .value
                .as_array()
                .filter(|values| !values.is_empty())
                .ok_or_else(|| bad("`in` needs a non-empty array".into()))?;
            let literals = values
                .iter()
                .map(|v| literal(column.ty, v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            return Ok(format!("{quoted} IN ({})", literals.join(", ")));
        }
        let rendered = literal(column.ty, &check.value).map_err(bad)?;
        Ok(format!("{quoted} {} {rendered}", check.op.as_sql()))
    }

    fn unique_index(&self, table: &str, columns: &[String], suffix: &str) -> String {
        let list = columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({list}) WHERE \"deleted_at\" IS NULL",
            quote_ident(&format!("uq_{table}__{suffix}")),
            self.table_ref(table)
        )
    }

    fn add_column(&mut self, add: &AddColumn) -> Result<(), MigrationError> {
        self.ensure_table(&add.table)?;
        self.name("column", &add.column)?;
        let (ty, type_not_null) = SqlType::parse(&add.sql_type)
            .map_err(|e| self.invalid(format!("column `{}.{}`: {e}", add.table, add.column)))?;
        let not_null = type_not_null || add.nullable == Some(false);
        let Some(table) = self.model.tables.get_mut(&add.table) else {
            return Err(self.invalid(format!("table `{}` vanished", add.table)));
        };
        match table.column(&add.column) {
            Some(existing) if existing.ty == ty && !existing.builtin => {}
            Some(_) => {
                return Err(MigrationError::Invalid {
                    version: self.version,
                    message: format!(
                        "column `{}.{}` already exists with another type or is reserved",
                        add.table, add.column
                    ),
                });
            }
            None => table.columns.push(ColumnModel {
                name: add.column.clone(),
                ty,
                not_null,
                has_default: false,
                builtin: false,
            }),
        }
        self.statements.push(format!(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}{}",
            self.table_ref(&add.table),
            quote_ident(&add.column),
            ty.as_sql(),
            if not_null { " NOT NULL" } else { "" }
        ));
        if add.index {
            self.index(
                &add.table,
                &add.column,
                add.index_type.unwrap_or(IndexType::Btree),
            );
        }
        Ok(())
    }

    fn create_index(&mut self, index: &CreateIndex) -> Result<(), MigrationError> {
        self.ensure_table(&index.table)?;
        let exists = self
            .model
            .table(&index.table)
            .is_some_and(|t| t.column(&index.column).is_some());
        if !exists {
            return Err(self.invalid(format!(
                "index on unknown column `{}.{}`",
                index.table, index.column
            )));
        }
        self.index(
            &index.table,
            &index.column,
            index.index_type.unwrap_or(IndexType::Btree),
        );
        Ok(())
    }

    fn index(&mut self, table: &str, column: &str, method: IndexType) {
        self.statements.push(format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} USING {} ({})",
            quote_ident(&format!("ix_{table}__{column}")),
            self.table_ref(table),
            method.as_sql(),
            quote_ident(column)
        ));
    }
}

fn builtin_column_ddl() -> String {
    "\"id\" uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
     \"created_at\" timestamptz NOT NULL DEFAULT now(), \
     \"updated_at\" timestamptz NOT NULL DEFAULT now(), \
     \"deleted_at\" timestamptz"
        .to_string()
}

/// Renders a DDL literal of type `ty`, or says why `value` does not fit.
fn literal(ty: SqlType, value: &Value) -> Result<String, String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => {
            return Err(format!(
                "`{other}` is not a literal of type {}",
                ty.as_sql()
            ));
        }
    };
    let fits = match ty {
        SqlType::Integer | SqlType::BigInt => text.parse::<i64>().is_ok(),
        SqlType::Numeric(_) => is_decimal(&text),
        SqlType::Boolean => matches!(value, Value::Bool(_)),
        SqlType::Text
        | SqlType::Varchar(_)
        | SqlType::Date
        | SqlType::Timestamptz
        | SqlType::Uuid => value.is_string(),
        SqlType::Jsonb => false,
    };
    if !fits {
        return Err(format!(
            "`{value}` is not a literal of type {}",
            ty.as_sql()
        ));
    }
    Ok(match ty {
        SqlType::Integer | SqlType::BigInt | SqlType::Numeric(_) | SqlType::Boolean => text,
        _ => format!("{}::{}", quote_literal(&text), ty.as_sql()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eerp_abi::migration::parse_migrations;

    fn plan_json(json: &str) -> Result<(Vec<PlannedStep>, SchemaModel), MigrationError> {
        plan("t_acme__crm", &parse_migrations(json.as_bytes()).unwrap())
    }

    #[test]
    fn original_format_creates_the_table_then_the_column_and_index() {
        let (steps, model) = plan_json(
            r#"{"entity":"vente","version":1,"operations":[
                {"type":"add_column","table":"vente","column":"type_client","sql_type":"TEXT","nullable":true,"index":true,"index_type":"gin"}]}"#,
        )
        .unwrap();
        let sql = &steps[0].statements;
        assert!(sql[0].starts_with(
            r#"CREATE TABLE IF NOT EXISTS "t_acme__crm"."vente" ("id" uuid PRIMARY KEY"#
        ));
        assert_eq!(
            sql[1],
            r#"ALTER TABLE "t_acme__crm"."vente" ADD COLUMN IF NOT EXISTS "type_client" text"#
        );
        assert!(sql[2].contains(r#"USING gin ("type_client")"#));
        assert_eq!(
            model
                .table("vente")
                .unwrap()
                .column("type_client")
                .unwrap()
                .ty,
            SqlType::Text
        );
    }

    #[test]
    fn create_table_renders_constraints_from_structured_input() {
        let (steps, _) = plan_json(
            r#"{"entity":"stock","version":1,"operations":[{"type":"create_table","table":"items","columns":[
                {"name":"sku","type":"text","not_null":true,"unique":true},
                {"name":"qty","type":"numeric(12,3)","not_null":true,"default":{"literal":"0"}},
                {"name":"kind","type":"text","default":{"literal":"it's"}}],
              "checks":[{"column":"qty","op":">=","value":0},{"column":"kind","op":"in","value":["a","it's"]}]}]}"#,
        )
        .unwrap();
        let create = &steps[0].statements[0];
        assert!(
            create.contains(r#""qty" numeric(12,3) NOT NULL DEFAULT 0"#),
            "{create}"
        );
        assert!(
            create.contains(r#""kind" text DEFAULT 'it''s'::text"#),
            "{create}"
        );
        assert!(create.contains(r#"CHECK ("qty" >= 0)"#), "{create}");
        assert!(
            create.contains(r#"CHECK ("kind" IN ('a'::text, 'it''s'::text))"#),
            "{create}"
        );
        assert!(steps[0].statements[1].contains(r#"WHERE "deleted_at" IS NULL"#));
    }

    #[test]
    fn unknown_types_injections_and_cross_table_mistakes_are_rejected() {
        let cases = [
            r#"{"entity":"x","version":1,"operations":[{"type":"add_column","table":"t","column":"c","sql_type":"money"}]}"#,
            r#"{"entity":"x","version":1,"operations":[{"type":"add_column","table":"t; drop","column":"c","sql_type":"text"}]}"#,
            r#"{"entity":"x","version":1,"operations":[{"type":"create_table","table":"t","columns":[{"name":"q","type":"integer"}],"checks":[{"column":"q","op":">=","value":"0 OR true"}]}]}"#,
            r#"{"entity":"x","version":1,"operations":[{"type":"create_table","table":"t","columns":[{"name":"o","type":"uuid","references":"other"}]}]}"#,
            r#"{"entity":"x","version":1,"operations":[{"type":"create_table","table":"t","columns":[{"name":"id","type":"uuid"}]}]}"#,
            r#"{"entity":"x","version":1,"operations":[{"type":"create_index","table":"t","column":"nope"}]}"#,
            r#"[{"entity":"x","version":2,"operations":[]},{"entity":"x","version":1,"operations":[]}]"#,
        ];
        for json in cases {
            assert!(plan_json(json).is_err(), "accepted: {json}");
        }
    }

    #[test]
    fn foreign_keys_stay_in_the_module_schema() {
        let (steps, _) = plan_json(
            r#"{"entity":"x","version":1,"operations":[
                {"type":"create_table","table":"orders","columns":[]},
                {"type":"create_table","table":"lines","columns":[{"name":"order_id","type":"uuid","not_null":true,"references":"orders"}]}]}"#,
        )
        .unwrap();
        assert!(
            steps[0]
                .statements
                .iter()
                .any(|s| s.contains(r#"REFERENCES "t_acme__crm"."orders" ("id")"#))
        );
    }
}
