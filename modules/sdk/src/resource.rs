//! [`Resource`]: the six routes every record type of a business module has (list,
//! create, get, patch, soft delete, restore), written once. A module declares the
//! table, the list filters and the record's rules; [`crate::resource_routes!`] mounts
//! the handlers.

use eerp_abi::data::{DataError, DataErrorKind};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Ctx, Error, ListSpec, Reply, Request, Row, Table};

/// A record type served as a REST resource.
pub trait Resource: 'static {
    /// The record as callers write it (the create body, what a patch changes).
    type Record: Serialize + DeserializeOwned + Default + Clone + JsonSchema;
    /// Its table.
    const TABLE: Table<Row<Self::Record>>;
    /// Its name in messages (`item`, `warehouse`).
    const NAME: &'static str;

    /// What the list route accepts.
    fn list_spec() -> ListSpec;

    /// Checks and normalises `record` before it is written: a new one (`current` is
    /// `None`) or a patched one (`current` is the stored row, locked).
    ///
    /// # Errors
    /// A 422 naming each invalid field, or whatever the rules need (404 for a missing
    /// referenced row, 409 for a state that forbids the change).
    fn check(
        ctx: &mut Ctx,
        record: Self::Record,
        current: Option<&Row<Self::Record>>,
    ) -> Result<Self::Record, Error>;

    /// Whether `row` may be soft-deleted (an item with stock may not).
    ///
    /// # Errors
    /// A 409 saying why not.
    fn check_delete(_ctx: &mut Ctx, _row: &Row<Self::Record>) -> Result<(), Error> {
        Ok(())
    }

    /// Whether the soft-deleted `row` may come back (its parent must still be live).
    ///
    /// # Errors
    /// A 409 or 422 saying why not.
    fn check_restore(_ctx: &mut Ctx, _row: &Row<Self::Record>) -> Result<(), Error> {
        Ok(())
    }

    /// The error for a write that hit a unique key.
    fn conflict() -> Error {
        Error::conflict(format!("another live {} already has this key", Self::NAME))
            .with_code("duplicate")
    }
}

fn written<R: Resource>(err: DataError) -> Error {
    if err.kind == DataErrorKind::Conflict {
        return R::conflict();
    }
    not_found::<R>(err)
}

fn not_found<R: Resource>(err: DataError) -> Error {
    if err.kind == DataErrorKind::NotFound {
        return Error::not_found(format!("no live {} with that id", R::NAME));
    }
    err.into()
}

/// `GET /things`.
pub fn list<R: Resource>(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    Ok(Reply::ok(R::TABLE.list(ctx, R::list_spec().query(req)?)?))
}

/// `POST /things`.
pub fn create<R: Resource>(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let record = R::check(ctx, req.record::<R::Record>()?, None)?;
    let row = R::TABLE.insert(ctx, &record).map_err(written::<R>)?;
    Ok(Reply::created(row))
}

/// `GET /things/{id}`.
pub fn get<R: Resource>(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let row = R::TABLE.get(ctx, req.path("id")?).map_err(not_found::<R>)?;
    Ok(Reply::ok(row))
}

/// `PATCH /things/{id}`.
pub fn update<R: Resource>(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    let current = R::TABLE.get_for_update(ctx, id).map_err(not_found::<R>)?;
    let patch = req.patch::<R::Record>(&current)?;
    let record = R::check(ctx, patch.merged.clone(), Some(&current))?;
    let row = R::TABLE
        .update(ctx, id, &patch.changes(&record))
        .map_err(written::<R>)?;
    Ok(Reply::ok(row))
}

/// `DELETE /things/{id}`: a soft delete.
pub fn delete<R: Resource>(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    let current = R::TABLE.get_for_update(ctx, id).map_err(not_found::<R>)?;
    R::check_delete(ctx, &current)?;
    R::TABLE.delete(ctx, id).map_err(not_found::<R>)?;
    Ok(Reply::no_content())
}

/// `POST /things/{id}/restore`.
pub fn restore<R: Resource>(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    let gone = || Error::not_found(format!("no deleted {} with that id", R::NAME));
    let deleted = R::TABLE
        .get_including_deleted(ctx, id)
        .map_err(|_| gone())?;
    if deleted.deleted_at.is_none() {
        return Err(gone());
    }
    R::check_restore(ctx, &deleted)?;
    let row = R::TABLE.restore(ctx, id).map_err(|err| match err.kind {
        DataErrorKind::NotFound => gone(),
        _ => written::<R>(err),
    })?;
    Ok(Reply::ok(row))
}

/// Mounts a [`Resource`]'s six routes on a module: `resource_routes!(module, Items,
/// "/items", "inventory.items")` adds `GET` and `POST /items`, `GET`, `PATCH` and
/// `DELETE /items/{id}` and `POST /items/{id}/restore`, with the permissions
/// `inventory.items.read`, `.create`, `.update` and `.delete` (restore needs `.delete`),
/// each described for API clients from the resource's record type and list spec.
#[macro_export]
macro_rules! resource_routes {
    ($module:expr, $resource:ty, $path:literal, $permission:literal) => {
        $module
            .get(
                $path,
                concat!($permission, ".read"),
                $crate::resource::list::<$resource>,
            )
            .summary(concat!("List ", $path, ", a page at a time"))
            .lists(<$resource as $crate::Resource>::list_spec)
            .returns::<$crate::Page<$crate::resource::RowOf<$resource>>>()
            .post(
                $path,
                concat!($permission, ".create"),
                $crate::resource::create::<$resource>,
            )
            .summary(concat!("Create one of ", $path))
            .takes_record::<<$resource as $crate::Resource>::Record>()
            .creates::<$crate::resource::RowOf<$resource>>()
            .get(
                concat!($path, "/{id}"),
                concat!($permission, ".read"),
                $crate::resource::get::<$resource>,
            )
            .summary(concat!("Read one of ", $path))
            .returns::<$crate::resource::RowOf<$resource>>()
            .patch(
                concat!($path, "/{id}"),
                concat!($permission, ".update"),
                $crate::resource::update::<$resource>,
            )
            .summary(concat!("Change some fields of one of ", $path))
            .takes_patch::<<$resource as $crate::Resource>::Record>()
            .returns::<$crate::resource::RowOf<$resource>>()
            .delete(
                concat!($path, "/{id}"),
                concat!($permission, ".delete"),
                $crate::resource::delete::<$resource>,
            )
            .summary(concat!("Soft-delete one of ", $path))
            .returns_nothing()
            .post(
                concat!($path, "/{id}/restore"),
                concat!($permission, ".delete"),
                $crate::resource::restore::<$resource>,
            )
            .summary(concat!("Undo the soft delete of one of ", $path))
            .returns::<$crate::resource::RowOf<$resource>>()
    };
}

/// The stored row of resource `R`.
pub type RowOf<R> = Row<<R as Resource>::Record>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Module;
    use eerp_abi::manifest::ParameterIn;
    use serde::Deserialize;
    use serde_json::{Value, json};

    /// A thing.
    #[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
    struct Thing {
        /// Its name.
        name: String,
        colour: Option<String>,
    }

    struct Things;

    impl Resource for Things {
        type Record = Thing;
        const TABLE: Table<Row<Thing>> = Table::new("things");
        const NAME: &'static str = "thing";

        fn list_spec() -> ListSpec {
            ListSpec::new("things")
                .filter_one_of("colour", &["red", "blue"])
                .filter_id("owner_id")
                .max_limit(50)
        }

        fn check(_: &mut Ctx, record: Thing, _: Option<&Row<Thing>>) -> Result<Thing, Error> {
            Ok(record)
        }
    }

    fn manifest() -> eerp_abi::manifest::Manifest {
        crate::resource_routes!(
            Module::new("shop", "1.0.0"),
            Things,
            "/things",
            "shop.things"
        )
        .manifest()
    }

    fn route<'a>(
        manifest: &'a eerp_abi::manifest::Manifest,
        method: &str,
        path: &str,
    ) -> &'a eerp_abi::manifest::Route {
        manifest
            .routes
            .iter()
            .find(|r| r.method == method && r.path == path)
            .unwrap()
    }

    #[test]
    fn the_six_routes_describe_their_bodies_from_the_record_type() {
        let manifest = manifest();
        let create = route(&manifest, "POST", "/things");
        let request = create.request.as_ref().unwrap();
        assert_eq!(request["additionalProperties"], false);
        assert_eq!(request["required"], json!(["name"]));
        assert_eq!(request["properties"]["name"]["description"], "Its name.");
        assert_eq!(create.responses[0].status, 201);
        assert_eq!(
            create.responses[0].schema,
            Some(json!({ "$ref": "#/$defs/ThingRow" }))
        );

        let patch = route(&manifest, "PATCH", "/things/{id}");
        let request = patch.request.as_ref().unwrap();
        assert!(request.get("required").is_none(), "{request}");
        assert_eq!(request["minProperties"], 1);
        assert_eq!(patch.parameters[0].location, ParameterIn::Path);
        assert_eq!(patch.parameters[0].schema["format"], "uuid");

        let delete = route(&manifest, "DELETE", "/things/{id}");
        assert_eq!(
            (delete.responses[0].status, &delete.responses[0].schema),
            (204, &None)
        );

        // The row is the record's fields and the host's columns, all in one object.
        let row = &manifest.schemas["ThingRow"];
        for field in ["id", "name", "colour", "created_at", "deleted_at"] {
            assert!(row["properties"].get(field).is_some(), "{field}: {row}");
        }
        assert_eq!(
            manifest.schemas["ThingRowPage"]["properties"]["data"]["items"],
            json!({ "$ref": "#/$defs/ThingRow" })
        );
    }

    #[test]
    fn a_list_route_describes_its_filters_and_paging() {
        let manifest = manifest();
        let list = route(&manifest, "GET", "/things");
        let param = |name: &str| -> &Value {
            &list
                .parameters
                .iter()
                .find(|p| p.name == name)
                .unwrap()
                .schema
        };
        assert_eq!(param("colour")["enum"], json!(["red", "blue"]));
        assert_eq!(param("owner_id")["format"], "uuid");
        assert_eq!(param("limit")["maximum"], 50);
        assert_eq!(param("include_deleted")["type"], "boolean");
        assert!(
            param("order")["enum"]
                .as_array()
                .unwrap()
                .contains(&json!("-created_at"))
        );
        assert!(list.parameters.iter().all(|p| !p.required));
    }
}
