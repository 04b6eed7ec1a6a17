//! The API's OpenAPI 3.1 document (`GET /v1/openapi.json`), built from the code: the route
//! table gives every operation its method, path and the scope it needs (so the document cannot
//! list a route the router lacks, nor miss one); the request and query types give their schemas
//! (`utoipa`'s derives on the structs the handlers parse); the error table gives the error
//! schema and its codes. `docs/openapi.json` is the committed copy a test compares with.
//!
//! A route's success answer has its status, a sentence and, where the handler answers a typed
//! struct (`views`), that struct's schema; the others still build JSON values.

use utoipa::{
    IntoParams, ToSchema,
    openapi::{
        Components, ComponentsBuilder, ContentBuilder, HttpMethod, Info, OpenApi, OpenApiBuilder, Paths, RefOr,
        Required, ResponseBuilder, Schema,
        header::HeaderBuilder,
        path::{OperationBuilder, Parameter, ParameterBuilder, ParameterIn},
        request_body::RequestBodyBuilder,
        schema::{ObjectBuilder, Type},
        security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme},
    },
};

use crate::{
    Code,
    openapi_table::{Body, Doc, doc},
    routes::{Access, RouteSpec, route_table},
};

/// A request body's schema, and how to register it (with the schemas it refers to).
pub(crate) fn body<T: ToSchema>() -> Body {
    Body::Json { name: T::name().into_owned(), required: true, register: register::<T> }
}

/// A body that may be left out (an empty body means the defaults).
pub(crate) fn optional_body<T: ToSchema>() -> Body {
    Body::Json { name: T::name().into_owned(), required: false, register: register::<T> }
}

/// Adds `T`'s schema and the schemas it refers to.
pub(crate) fn register<T: ToSchema>(list: &mut Vec<(String, RefOr<Schema>)>) {
    list.push((T::name().into_owned(), T::schema()));
    T::schemas(list);
}

/// A query's parameters.
pub(crate) fn query<T: IntoParams>() -> Vec<Parameter> {
    T::into_params(|| Some(ParameterIn::Query))
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// `{"error": {"code", "message"}}`, its code one of the table's.
fn error_schema() -> Schema {
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let inner = ObjectBuilder::new()
        .property("code", string().enum_values(Some(codes)).description(Some("Stable: match on it.")))
        .required("code")
        .property("message", string().description(Some("For people: what is wrong and how to fix it.")))
        .required("message")
        .description(Some("Over a rate limit, also `limit`, `usage` and `reset`."));
    Schema::Object(ObjectBuilder::new().property("error", inner).required("error").build())
}

fn components(extra: Vec<(String, RefOr<Schema>)>) -> Components {
    let bearer = |format: &str, what: &str| {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some(format.to_owned());
        http.description = Some(what.to_owned());
        SecurityScheme::Http(http)
    };
    let mut c = ComponentsBuilder::new()
        .schema("Error", error_schema())
        .security_scheme(
            "api_key",
            bearer("mr_<key id>_<secret>", "An API key; the operation names the scope it needs."),
        )
        .security_scheme("admin_token", bearer("mra_<secret>", "The operator's admin token."));
    for (name, schema) in extra {
        c = c.schema(name, schema);
    }
    c.build()
}

/// `GET /v1/openapi.json`: the document (built once per process).
pub(crate) async fn serve() -> axum::response::Response {
    use axum::response::IntoResponse;
    static BUILT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let json = BUILT.get_or_init(|| serde_json::to_string(&document()).expect("the document serialises"));
    ([(axum::http::header::CONTENT_TYPE, "application/json")], json.clone()).into_response()
}

/// The document.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    let mut schemas = vec![];
    for spec in route_table() {
        let d = doc(spec.method, spec.path)
            .unwrap_or_else(|| panic!("no document entry for {} {}", spec.method, spec.path));
        if let Body::Json { register, .. } = &d.body {
            register(&mut schemas);
        }
        if let Some(r) = &d.returns {
            (r.register)(&mut schemas);
        }
        paths.add_path_operation(spec.path, vec![method(spec.method)], operation(&spec, &d));
    }
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    let mut info = Info::new("Mailroom", "1");
    info.description = Some(
        "An email sending engine: mailboxes, idempotent sends, events and webhooks. Errors are \
         `{\"error\": {\"code\", \"message\"}}`; every answer carries `Mailroom-Request-Id`."
            .to_owned(),
    );
    OpenApiBuilder::new().info(info).paths(paths).components(Some(components(schemas))).build()
}

fn method(m: &str) -> HttpMethod {
    match m {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        _ => HttpMethod::Delete,
    }
}

fn operation(spec: &RouteSpec, d: &Doc) -> utoipa::openapi::path::Operation {
    let id = operation_id(spec);
    let tag = spec.path.split('/').find(|s| !s.is_empty() && *s != "v1").unwrap_or("api").to_owned();
    let mut op = OperationBuilder::new().operation_id(Some(id)).summary(Some(d.summary)).tag(tag);
    for name in spec.path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')) {
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string())),
        );
    }
    for p in (d.params)() {
        op = op.parameter(p);
    }
    if d.idempotency_key {
        op = op.parameter(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .description(Some("One key, at most one send: a repeat answers the first send."))
                .schema(Some(string().min_length(Some(1)).max_length(Some(255)))),
        );
    }
    if matches!(spec.access, Access::Key(_) | Access::AdminOrKey(_)) {
        op = op.parameter(
            ParameterBuilder::new()
                .name("Mailroom-Workspace")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some("Act in a client sub-workspace the key reaches through a grant."))
                .schema(Some(string())),
        );
    }
    op = match &d.body {
        Body::None => op,
        Body::Json { name, required, .. } => op.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", ContentBuilder::new().schema(Some(RefOr::Ref(schema_ref(name)))).build())
                .required(Some(if *required { Required::True } else { Required::False }))
                .build(),
        )),
        Body::Csv => op.request_body(Some(
            RequestBodyBuilder::new()
                .content("text/csv", ContentBuilder::new().schema(Some(string())).build())
                .required(Some(Required::True))
                .build(),
        )),
    };
    op = op.response(d.status.to_string(), success(d));
    for code in error_statuses(spec, d) {
        op = op.response(code.to_string(), error_response(code));
    }
    op = match spec.access {
        Access::Public => op.securities(Some(Vec::<SecurityRequirement>::new())),
        Access::Admin => op.security(SecurityRequirement::new("admin_token", Vec::<String>::new())),
        Access::Key(s) => op.security(SecurityRequirement::new("api_key", [s.as_str()])),
        Access::AdminOrKey(s) => op
            .security(SecurityRequirement::new("admin_token", Vec::<String>::new()))
            .security(SecurityRequirement::new("api_key", [s.as_str()])),
    };
    op.build()
}

fn schema_ref(name: &str) -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name(name)
}

/// `GET /v1/sends/{id}` → `get_sends_id`: stable, unique, readable.
fn operation_id(spec: &RouteSpec) -> String {
    let words: Vec<String> = spec
        .path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "v1")
        .map(|s| s.trim_start_matches('{').trim_end_matches('}').replace('-', "_"))
        .collect();
    format!("{}_{}", spec.method.to_ascii_lowercase(), words.join("_"))
}

fn success(d: &Doc) -> utoipa::openapi::Response {
    let mut r = ResponseBuilder::new().description(d.answer);
    if d.status != 204 {
        let kind = if d.answer_type == "json" { "application/json" } else { d.answer_type };
        let schema: RefOr<Schema> = match (&d.returns, kind) {
            (Some(typed), _) => RefOr::Ref(schema_ref(&typed.name)),
            (None, "application/json") => ObjectBuilder::new().schema_type(Type::Object).into(),
            (None, _) => string().into(),
        };
        r = r.content(kind, ContentBuilder::new().schema(Some(schema)).build());
    }
    r = r.header("Mailroom-Request-Id", HeaderBuilder::new().schema(Some(string())).build());
    r.build()
}

fn error_statuses(spec: &RouteSpec, d: &Doc) -> Vec<u16> {
    let mut codes = vec![400, 500];
    if spec.access != Access::Public {
        codes.extend([401, 429]);
    }
    if matches!(spec.access, Access::Key(_) | Access::AdminOrKey(_)) {
        // 404 too: a `Mailroom-Workspace` out of the key's reach answers like one that is not.
        codes.extend([403, 404]);
    }
    if spec.path.contains('{') {
        codes.push(404);
    }
    codes.extend(d.errors.iter().copied());
    codes.sort_unstable();
    codes.dedup();
    codes
}

fn error_response(status: u16) -> utoipa::openapi::Response {
    let what = match status {
        400 => "The request is malformed; `error.code` says how.",
        401 => "No valid key or token.",
        403 => "The key lacks the scope, or may not do this.",
        404 => "Nothing with this id in reach.",
        409 => "The resource's state does not allow it.",
        413 => "The body is too large.",
        422 => "Well formed, but not carried out; `error.code` says why.",
        429 => "Over a rate limit: see `Retry-After` and the `RateLimit-*` headers.",
        503 => "A dependency is unavailable; retry later.",
        _ => "Something failed on the server; it was logged with the request id.",
    };
    let mut r = ResponseBuilder::new()
        .description(what)
        .content("application/json", ContentBuilder::new().schema(Some(RefOr::Ref(schema_ref("Error")))).build())
        .header("Mailroom-Request-Id", HeaderBuilder::new().schema(Some(string())).build());
    if status == 429 {
        for h in ["Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
            r = r.header(h, HeaderBuilder::new().schema(Some(string())).build());
        }
    }
    r.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `MAILROOM_WRITE_OPENAPI=1 cargo test -p mailroom-api openapi` rewrites the committed copy.
    #[test]
    fn the_committed_document_is_the_one_the_code_builds() {
        let built = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        if std::env::var_os("MAILROOM_WRITE_OPENAPI").is_some() {
            std::fs::write(path, &built).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == built,
            "docs/openapi.json differs from what the code builds: review the API change, then run \
             MAILROOM_WRITE_OPENAPI=1 cargo test -p mailroom-api openapi"
        );
    }

    #[test]
    fn every_route_is_an_operation_with_its_scope() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut n = 0;
        for spec in route_table() {
            let op = &doc["paths"][spec.path][spec.method.to_ascii_lowercase()];
            assert!(op.is_object(), "{} {} is missing", spec.method, spec.path);
            if let Access::Key(s) = spec.access {
                assert_eq!(op["security"][0]["api_key"][0], s.as_str(), "{} {}", spec.method, spec.path);
            }
            n += 1;
        }
        let ids: std::collections::HashSet<String> = route_table().iter().map(operation_id).collect();
        assert_eq!(ids.len(), n, "operation ids are unique");
    }
}
