//! [`ListSpec`]: the query parameters of a list route, declared once and parsed for the
//! module: `limit`, `cursor`, `order`, `include_deleted` and filters on declared fields;
//! anything else is refused with a 400 that lists what the route takes.

use eerp_abi::data::{Filter, FilterOp, ListQuery, Order};
use eerp_abi::manifest::Parameter;
use serde_json::{Value, json};

use crate::{Error, Request, describe};

const PAGING: [&str; 4] = ["limit", "cursor", "order", "include_deleted"];

/// What a list route accepts.
#[derive(Debug, Clone)]
pub struct ListSpec {
    table: &'static str,
    filters: Vec<ListFilter>,
    sortable: Vec<&'static str>,
    max_limit: u32,
}

#[derive(Debug, Clone)]
struct ListFilter {
    param: &'static str,
    column: &'static str,
    op: FilterOp,
    allowed: Option<&'static [&'static str]>,
    boolean: bool,
    /// The JSON Schema `format` of the value, for API clients (`uuid`, `date`).
    format: Option<&'static str>,
}

impl ListSpec {
    /// Lists of `table`: pages of at most 200, sortable by `created_at` and `updated_at`.
    pub fn new(table: &'static str) -> Self {
        Self {
            table,
            filters: Vec::new(),
            sortable: vec!["created_at", "updated_at"],
            max_limit: 200,
        }
    }

    /// `?column=value`: rows whose `column` equals the value.
    pub fn filter(self, column: &'static str) -> Self {
        self.filter_by(column, column, FilterOp::Eq)
    }

    /// `?column=id`: rows whose uuid `column` (a reference such as `item_id`) is `id`.
    pub fn filter_id(self, column: &'static str) -> Self {
        self.filter_formatted(column, "uuid")
    }

    /// `?column=YYYY-MM-DD`: rows whose date `column` is that day.
    pub fn filter_date(self, column: &'static str) -> Self {
        self.filter_formatted(column, "date")
    }

    fn filter_formatted(mut self, column: &'static str, format: &'static str) -> Self {
        self = self.filter(column);
        if let Some(filter) = self.filters.last_mut() {
            filter.format = Some(format);
        }
        self
    }

    /// `?param=value` compared to `column` with `op` (`Contains` for a search box).
    pub fn filter_by(mut self, param: &'static str, column: &'static str, op: FilterOp) -> Self {
        self.filters.push(ListFilter {
            param,
            column,
            op,
            allowed: None,
            boolean: false,
            format: None,
        });
        self
    }

    /// `?column=true` or `false`, on a boolean column.
    pub fn filter_bool(mut self, column: &'static str) -> Self {
        self.filters.push(ListFilter {
            param: column,
            column,
            op: FilterOp::Eq,
            allowed: Some(&["true", "false"]),
            boolean: true,
            format: None,
        });
        self
    }

    /// `?column=value` where the value must be one of `allowed`.
    pub fn filter_one_of(mut self, column: &'static str, allowed: &'static [&'static str]) -> Self {
        self.filters.push(ListFilter {
            param: column,
            column,
            op: FilterOp::Eq,
            allowed: Some(allowed),
            boolean: false,
            format: None,
        });
        self
    }

    /// Columns `order` may name (besides `created_at` and `updated_at`), `-` for descending.
    pub fn sortable(mut self, columns: &[&'static str]) -> Self {
        self.sortable.extend_from_slice(columns);
        self
    }

    /// Largest page a caller may ask for (default 200).
    pub fn max_limit(mut self, limit: u32) -> Self {
        self.max_limit = limit;
        self
    }

    /// The query parameters it accepts, described for API clients.
    pub fn parameters(&self) -> Vec<Parameter> {
        let mut parameters: Vec<Parameter> = self
            .filters
            .iter()
            .map(|f| {
                let schema = match (f.boolean, f.allowed, f.format) {
                    (true, _, _) => json!({ "type": "boolean" }),
                    (false, Some(allowed), _) => describe::one_of(allowed.iter().copied()),
                    (false, None, Some(format)) => json!({ "type": "string", "format": format }),
                    (false, None, None) => json!({ "type": "string" }),
                };
                let how = if f.op == FilterOp::Contains {
                    "contains"
                } else {
                    "equals"
                };
                describe::list_parameter(
                    f.param,
                    schema,
                    format!("Rows whose `{}` {how} this.", f.column),
                )
            })
            .collect();
        let orders = self
            .sortable
            .iter()
            .flat_map(|c| [c.to_string(), format!("-{c}")])
            .collect::<Vec<_>>();
        parameters.extend([
            describe::list_parameter(
                "limit",
                json!({ "type": "integer", "minimum": 1, "maximum": self.max_limit }),
                "Rows per page.".into(),
            ),
            describe::list_parameter(
                "cursor",
                json!({ "type": "string" }),
                "The `next_cursor` of the previous page.".into(),
            ),
            describe::list_parameter(
                "order",
                describe::one_of(orders.iter().map(String::as_str)),
                "Sort column, `-` for descending.".into(),
            ),
            describe::list_parameter(
                "include_deleted",
                json!({ "type": "boolean" }),
                "Also soft-deleted rows.".into(),
            ),
        ]);
        parameters
    }

    /// The list query `req`'s parameters ask for.
    ///
    /// # Errors
    /// A 400 naming an unknown parameter or a bad value, and what is accepted.
    pub fn query(&self, req: &Request) -> Result<ListQuery, Error> {
        let accepted = || {
            let mut names: Vec<&str> = self.filters.iter().map(|f| f.param).collect();
            names.extend(PAGING);
            names.join(", ")
        };
        if let Some(unknown) = req
            .query_names()
            .find(|name| !PAGING.contains(name) && !self.filters.iter().any(|f| f.param == *name))
        {
            return Err(Error::bad_request(format!(
                "unknown query parameter `{unknown}`; this list takes {}",
                accepted()
            )));
        }
        let mut filter = Vec::new();
        for f in &self.filters {
            let Some(value) = req.query(f.param) else {
                continue;
            };
            if let Some(allowed) = f.allowed.filter(|allowed| !allowed.contains(&value)) {
                return Err(Error::bad_request(format!(
                    "{} `{value}` must be one of {}",
                    f.param,
                    allowed.join(", ")
                )));
            }
            filter.push(Filter {
                column: f.column.into(),
                op: f.op,
                value: if f.boolean {
                    Value::Bool(value == "true")
                } else {
                    Value::String(value.into())
                },
            });
        }
        Ok(ListQuery {
            module: None,
            table: self.table.into(),
            filter,
            order: req.query("order").map(|o| self.order(o)).transpose()?,
            limit: req.query("limit").map(|l| self.limit(l)).transpose()?,
            cursor: req.query("cursor").map(str::to_string),
            include_deleted: match req.query("include_deleted") {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(Error::bad_request(format!(
                        "include_deleted `{other}` must be true or false"
                    )));
                }
            },
        })
    }

    fn order(&self, text: &str) -> Result<Order, Error> {
        let (column, desc) = match text.strip_prefix('-') {
            Some(column) => (column, true),
            None => (text, false),
        };
        if !self.sortable.contains(&column) {
            return Err(Error::bad_request(format!(
                "order `{text}` must be one of {}, with `-` for descending",
                self.sortable.join(", ")
            )));
        }
        Ok(Order {
            column: column.into(),
            desc,
        })
    }

    fn limit(&self, text: &str) -> Result<u32, Error> {
        text.parse::<u32>()
            .ok()
            .filter(|n| (1..=self.max_limit).contains(n))
            .ok_or_else(|| {
                Error::bad_request(format!(
                    "limit `{text}` must be a whole number from 1 to {}",
                    self.max_limit
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eerp_abi::envelope;

    fn request(query: &[(&str, &str)]) -> Request {
        Request::new(envelope::Request {
            method: "GET".into(),
            route: "/things".into(),
            params: Default::default(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: envelope::null(),
            principal: envelope::Principal {
                subject: "u".into(),
                roles: vec![],
            },
            request_id: "r".into(),
        })
    }

    fn spec() -> ListSpec {
        ListSpec::new("things")
            .filter_one_of("status", &["open", "done"])
            .filter_by("q", "name", FilterOp::Contains)
            .filter_bool("done")
            .sortable(&["name"])
            .max_limit(50)
    }

    #[test]
    fn declared_parameters_become_the_query() {
        let query = spec()
            .query(&request(&[
                ("status", "open"),
                ("q", "ada"),
                ("order", "-name"),
                ("limit", "10"),
                ("cursor", "abc"),
                ("include_deleted", "true"),
            ]))
            .unwrap();
        assert_eq!(query.table, "things");
        assert_eq!(query.filter.len(), 2);
        assert_eq!(query.filter[1].column, "name");
        assert_eq!(query.filter[1].op, FilterOp::Contains);
        let order = query.order.unwrap();
        assert_eq!((order.column.as_str(), order.desc), ("name", true));
        assert_eq!(query.limit, Some(10));
        assert_eq!(query.cursor.as_deref(), Some("abc"));
        assert!(query.include_deleted);
        let done = spec().query(&request(&[("done", "false")])).unwrap();
        assert_eq!(done.filter[0].value, Value::Bool(false));
        assert_eq!(
            spec()
                .query(&request(&[("done", "no")]))
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for (query, named) in [
            (("colour", "red"), "unknown query parameter `colour`"),
            (("status", "vip"), "must be one of open, done"),
            (("order", "email"), "order `email`"),
            (("limit", "51"), "from 1 to 50"),
            (("limit", "x"), "from 1 to 50"),
            (("include_deleted", "yes"), "true or false"),
        ] {
            let err = spec().query(&request(&[query])).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(err.body.detail.contains(named), "{}", err.body.detail);
        }
    }
}
