//! # eerp-native-baseline: what EERP is measured against
//!
//! Bench only (`tests/bench/compare.py`): CRM's contact routes served the plain way, by
//! actix-web and deadpool-postgres with hand-written, prepared SQL against the same
//! tenant schema EERP uses, the same JSON in and out, and no sandbox, token, tenant
//! directory or limits. It is the ceiling EERP's request path is compared with; it must
//! never be deployed (it trusts every caller).
//!
//! `DATABASE_URL`, `EERP_BENCH_SCHEMA` (`t_demo__crm`) and `PORT` configure it. A read may
//! name another tenant's schema in `x-eerp-bench-schema` (`tests/bench/tenants.py`, the
//! same table in many schemas): the way a schema-per-tenant service without EERP would
//! pick the tenant's tables.

use std::sync::Arc;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::{Map, Value, json};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

/// The contacts table: its quoted name, columns and select list.
struct Contacts {
    table: String,
    /// (name, SQL type) of every column.
    columns: Vec<(String, String)>,
    select: String,
}

impl Contacts {
    /// The table the request reads: the default schema's, or the one `x-eerp-bench-schema`
    /// names (letters, digits and `_` only, so it needs no further quoting).
    fn table_for(&self, request: &HttpRequest) -> Result<String, HttpResponse> {
        let Some(header) = request.headers().get("x-eerp-bench-schema") else {
            return Ok(self.table.clone());
        };
        match header.to_str() {
            Ok(schema)
                if schema
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                Ok(format!("\"{schema}\".contacts"))
            }
            _ => Err(problem(400, "x-eerp-bench-schema is not a schema name")),
        }
    }

    fn writable(&self, name: &str) -> Option<&str> {
        let system = ["id", "created_at", "updated_at", "deleted_at"];
        self.columns
            .iter()
            .find(|(column, _)| column == name && !system.contains(&name))
            .map(|(_, ty)| ty.as_str())
    }
}

struct State {
    pool: Pool,
    contacts: Contacts,
}

type Shared = web::Data<Arc<State>>;

fn problem(status: u16, detail: &str) -> HttpResponse {
    let code = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(code)
        .content_type("application/problem+json")
        .body(json!({ "status": status, "detail": detail }).to_string())
}

/// Rows of text columns as JSON objects, as EERP's data API answers them.
fn rows_json(columns: &[(String, String)], rows: &[tokio_postgres::Row]) -> Vec<Value> {
    rows.iter()
        .map(|row| {
            let object: Map<String, Value> = columns
                .iter()
                .enumerate()
                .map(|(i, (name, _))| {
                    let value: Option<String> = row.try_get(i).ok().flatten();
                    (name.clone(), value.map_or(Value::Null, Value::String))
                })
                .collect();
            Value::Object(object)
        })
        .collect()
}

async fn query(
    state: &State,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, HttpResponse> {
    let client = state
        .pool
        .get()
        .await
        .map_err(|e| problem(503, &e.to_string()))?;
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(|e| problem(500, &e.to_string()))?;
    client.query(&statement, params).await.map_err(|e| {
        let conflict = e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION);
        let invalid =
            e.code() == Some(&tokio_postgres::error::SqlState::INVALID_TEXT_REPRESENTATION);
        match (conflict, invalid) {
            (true, _) => problem(409, "duplicate"),
            (_, true) => problem(400, "invalid value"),
            _ => problem(500, &e.to_string()),
        }
    })
}

fn one(state: &State, rows: &[tokio_postgres::Row], created: bool) -> HttpResponse {
    match rows_json(&state.contacts.columns, rows).pop() {
        Some(row) if created => HttpResponse::Created().json(row),
        Some(row) => HttpResponse::Ok().json(row),
        None => problem(404, "no live contact with that id"),
    }
}

async fn get(state: Shared, request: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let c = &state.contacts;
    let table = match c.table_for(&request) {
        Ok(table) => table,
        Err(response) => return response,
    };
    let sql = format!(
        "SELECT {} FROM {table} WHERE id = $1::text::uuid AND deleted_at IS NULL",
        c.select
    );
    match query(&state, &sql, &[&id.as_str()]).await {
        Ok(rows) => one(&state, &rows, false),
        Err(response) => response,
    }
}

async fn list(
    state: Shared,
    request: HttpRequest,
    params: web::Query<Map<String, Value>>,
) -> HttpResponse {
    let limit = params
        .get("limit")
        .and_then(Value::as_str)
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| (1..=200).contains(l))
        .unwrap_or(50);
    let c = &state.contacts;
    let t = match c.table_for(&request) {
        Ok(table) => table,
        Err(response) => return response,
    };
    let sql = format!(
        "SELECT {} FROM {t} WHERE deleted_at IS NULL ORDER BY {t}.created_at, {t}.id LIMIT $1",
        c.select
    );
    let rows = match query(&state, &sql, &[&(limit + 1)]).await {
        Ok(rows) => rows,
        Err(response) => return response,
    };
    let mut data = rows_json(&c.columns, &rows);
    let more = data.len() as i64 > limit;
    data.truncate(limit as usize);
    let next_cursor = more
        .then(|| data.last().map(|row| row["id"].clone()))
        .flatten();
    HttpResponse::Ok().json(json!({ "data": data, "next_cursor": next_cursor }))
}

/// The body's fields as (column, type, text value), in column order.
fn fields(
    state: &State,
    body: &Map<String, Value>,
) -> Result<Vec<(String, String, Option<String>)>, HttpResponse> {
    let mut fields = Vec::new();
    for (name, value) in body {
        let ty = state
            .contacts
            .writable(name)
            .ok_or_else(|| problem(400, &format!("unknown field `{name}`")))?;
        let text = match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        fields.push((name.clone(), ty.to_string(), text));
    }
    Ok(fields)
}

async fn create(state: Shared, body: web::Json<Map<String, Value>>) -> HttpResponse {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    if name.is_empty() || name.len() > 200 {
        return problem(422, "name must be 1 to 200 characters");
    }
    let fields = match fields(&state, &body) {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let names: Vec<String> = fields.iter().map(|(n, _, _)| format!("\"{n}\"")).collect();
    let placeholders: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(i, (_, ty, _))| format!("${}::text::{ty}", i + 1))
        .collect();
    let c = &state.contacts;
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
        c.table,
        names.join(", "),
        placeholders.join(", "),
        c.select
    );
    let values: Vec<Option<String>> = fields.into_iter().map(|(_, _, v)| v).collect();
    let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as _).collect();
    match query(&state, &sql, &params).await {
        Ok(rows) => one(&state, &rows, true),
        Err(response) => response,
    }
}

async fn update(
    state: Shared,
    id: web::Path<String>,
    body: web::Json<Map<String, Value>>,
) -> HttpResponse {
    let fields = match fields(&state, &body) {
        Ok(fields) if !fields.is_empty() => fields,
        Ok(_) => return problem(400, "the patch changes nothing"),
        Err(response) => return response,
    };
    let sets: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(i, (n, ty, _))| format!("\"{n}\" = ${}::text::{ty}", i + 2))
        .collect();
    let c = &state.contacts;
    let sql = format!(
        "UPDATE {} SET {}, updated_at = now() WHERE id = $1::text::uuid AND deleted_at IS NULL RETURNING {}",
        c.table,
        sets.join(", "),
        c.select
    );
    let mut values: Vec<Option<String>> = vec![Some(id.into_inner())];
    values.extend(fields.into_iter().map(|(_, _, v)| v));
    let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as _).collect();
    match query(&state, &sql, &params).await {
        Ok(rows) => one(&state, &rows, false),
        Err(response) => response,
    }
}

/// What CRM's `POST /contacts/validate` does, natively: trim, lower-case, check, answer.
async fn validate(body: web::Json<Map<String, Value>>) -> HttpResponse {
    let mut contact = body.into_inner();
    let name = contact
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    if name.is_empty() || name.len() > 200 {
        return problem(422, "name must be 1 to 200 characters");
    }
    contact.insert("name".into(), json!(name));
    if let Some(email) = contact.get("email").and_then(Value::as_str) {
        let email = email.trim().to_ascii_lowercase();
        if !email.contains('@') {
            return problem(422, "email is not an address");
        }
        contact.insert("email".into(), json!(email));
    }
    HttpResponse::Ok().json(contact)
}

async fn contacts_of(pool: &Pool, schema: &str) -> anyhow::Result<Contacts> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT column_name::text, format_type(a.atttypid, a.atttypmod)
             FROM information_schema.columns c
             JOIN pg_attribute a ON a.attrelid = (quote_ident($1) || '.contacts')::regclass
                                AND a.attname = c.column_name
             WHERE c.table_schema = $1 AND c.table_name = 'contacts'
             ORDER BY c.ordinal_position",
            &[&schema],
        )
        .await?;
    let columns: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    anyhow::ensure!(!columns.is_empty(), "no table {schema}.contacts");
    let select = columns
        .iter()
        .map(|(name, ty)| match ty.as_str() {
            "timestamp with time zone" => format!("(to_json(\"{name}\") #>> '{{}}')"),
            _ => format!("(\"{name}\")::text"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Contacts {
        table: format!("\"{schema}\".contacts"),
        columns,
        select,
    })
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")?;
    let schema = std::env::var("EERP_BENCH_SCHEMA").unwrap_or_else(|_| "t_demo__crm".into());
    let port: u16 = std::env::var("PORT")
        .unwrap_or_else(|_| "18100".into())
        .parse()?;
    let manager = Manager::from_config(
        url.parse()?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager).max_size(16).build()?;
    let contacts = contacts_of(&pool, &schema).await?;
    let state = Arc::new(State { pool, contacts });
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .route("/api/v1/crm/contacts", web::get().to(list))
            .route("/api/v1/crm/contacts", web::post().to(create))
            .route("/api/v1/crm/contacts/validate", web::post().to(validate))
            .route("/api/v1/crm/contacts/{id}", web::get().to(get))
            .route("/api/v1/crm/contacts/{id}", web::patch().to(update))
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await?;
    Ok(())
}
