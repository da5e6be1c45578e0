//! vAPI: JSON-RPC 2.0 at `POST /api` (what `create_vsphere_client` speaks), the REST
//! session resources, and the one mapping from a [`Fault`] to a vAPI standard error.
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value as Json};
use vsess_core::inventory::{ComputePolicy, FolderFilter, FolderType};
use vsess_core::{Fault, UserSession};

/// A vAPI standard error: its name, `error_type` and REST status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StdError {
    pub name: &'static str,
    pub error_type: &'static str,
    pub status: u16,
}

const fn std_error(name: &'static str, error_type: &'static str, status: u16) -> StdError {
    StdError {
        name,
        error_type,
        status,
    }
}

pub const UNAUTHENTICATED: StdError = std_error("unauthenticated", "UNAUTHENTICATED", 401);
pub const UNAUTHORIZED: StdError = std_error("unauthorized", "UNAUTHORIZED", 403);
pub const NOT_FOUND: StdError = std_error("not_found", "NOT_FOUND", 404);
pub const OPERATION_NOT_FOUND: StdError =
    std_error("operation_not_found", "OPERATION_NOT_FOUND", 404);
pub const INVALID_ARGUMENT: StdError = std_error("invalid_argument", "INVALID_ARGUMENT", 400);
pub const INVALID_REQUEST: StdError = std_error("invalid_request", "INVALID_REQUEST", 400);
pub const ALREADY_EXISTS: StdError = std_error("already_exists", "ALREADY_EXISTS", 400);
pub const UNSUPPORTED: StdError = std_error("unsupported", "UNSUPPORTED", 400);
pub const SERVICE_UNAVAILABLE: StdError =
    std_error("service_unavailable", "SERVICE_UNAVAILABLE", 503);
pub const INTERNAL_SERVER_ERROR: StdError =
    std_error("internal_server_error", "INTERNAL_SERVER_ERROR", 500);

/// The one place a `Fault` becomes a vAPI standard error (JSON-RPC and REST alike).
pub fn std_error_of(f: &Fault) -> StdError {
    match f {
        Fault::InvalidLogin | Fault::SessionActive | Fault::NotAuthenticated { .. } => {
            UNAUTHENTICATED
        }
        Fault::NoPermission { .. } => UNAUTHORIZED,
        Fault::NotFound(_) | Fault::ManagedObjectNotFound(_) => NOT_FOUND,
        Fault::MethodNotFound { .. } => OPERATION_NOT_FOUND,
        Fault::InvalidArgument { .. }
        | Fault::InvalidLocale(_)
        | Fault::InvalidName { .. }
        | Fault::InvalidProperty(_) => INVALID_ARGUMENT,
        Fault::InvalidRequest(_) => INVALID_REQUEST,
        Fault::DuplicateName { .. } => ALREADY_EXISTS,
        Fault::NotSupported(_) => UNSUPPORTED,
        Fault::SessionLimit { .. } | Fault::Unavailable(_) => SERVICE_UNAVAILABLE,
        Fault::SystemError(_) => INTERNAL_SERVER_ERROR,
    }
}

fn message_id(f: &Fault) -> String {
    format!("vsess.fault.{}", f.type_name())
}

/// vAPI times: RFC 3339, UTC, milliseconds.
pub fn time(t: &DateTime<Utc>) -> String {
    let mut out = String::with_capacity(24);
    crate::soap::rfc3339_into(&mut out, t, SecondsFormat::Millis);
    out
}

// ---- JSON-RPC --------------------------------------------------------------------------

/// A decoded JSON-RPC `invoke`.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoke {
    pub id: Json,
    pub service: String,
    pub operation: String,
    /// `params.input.STRUCTURE["operation-input"]`.
    pub input: Map<String, Json>,
    pub security: Security,
}

/// `params.ctx.securityCtx`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    None,
    UserPass {
        user: String,
        password: String,
    },
    SessionId(String),
    /// A scheme vsess does not accept (for example SAML tokens).
    Other(String),
}

/// A request that is not a usable JSON-RPC invoke: the JSON-RPC error to send.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub id: Json,
    pub code: i64,
    pub message: String,
}

pub fn decode_invoke(body: &[u8]) -> Result<Invoke, RpcError> {
    // Well-formed requests take the typed fast path; anything it does not take (errors,
    // duplicate keys, escaped keys or strings, unexpected types) goes the general way,
    // which decides what the answer is.
    match fast::decode(body) {
        Some(i) => Ok(i),
        None => decode_invoke_value(body),
    }
}

/// [`decode_invoke`] through a `serde_json::Value`.
fn decode_invoke_value(body: &[u8]) -> Result<Invoke, RpcError> {
    let v: Json = serde_json::from_slice(body).map_err(|e| RpcError {
        id: Json::Null,
        code: -32700,
        message: format!("Parse error: {e}"),
    })?;
    let id = v.get("id").cloned().unwrap_or(Json::Null);
    let invalid = |msg: &str| RpcError {
        id: id.clone(),
        code: -32600,
        message: format!("Invalid request: {msg}"),
    };
    if v.get("jsonrpc").and_then(Json::as_str) != Some("2.0") {
        return Err(invalid("\"jsonrpc\" must be \"2.0\""));
    }
    match v.get("method").and_then(Json::as_str) {
        Some("invoke") => {}
        Some(m) => {
            return Err(RpcError {
                id,
                code: -32601,
                message: format!("Method not found: {m}"),
            })
        }
        None => return Err(invalid("no \"method\"")),
    }
    let params = v.get("params").ok_or_else(|| invalid("no \"params\""))?;
    let service = params
        .get("serviceId")
        .and_then(Json::as_str)
        .ok_or_else(|| invalid("no params.serviceId"))?
        .to_owned();
    let operation = params
        .get("operationId")
        .and_then(Json::as_str)
        .ok_or_else(|| invalid("no params.operationId"))?
        .to_owned();
    let input = params
        .get("input")
        .and_then(|i| i.get("STRUCTURE"))
        .and_then(|s| s.get("operation-input"))
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    let sec = params.get("ctx").and_then(|c| c.get("securityCtx"));
    let security = match sec.and_then(|s| s.get("schemeId")).and_then(Json::as_str) {
        None => Security::None,
        Some("com.vmware.vapi.std.security.user_pass") => {
            let s = sec.unwrap_or(&Json::Null);
            Security::UserPass {
                user: string_field(s.get("userName")),
                password: string_field(s.get("password")),
            }
        }
        Some("com.vmware.vapi.std.security.session_id") => {
            Security::SessionId(string_field(sec.and_then(|s| s.get("sessionId"))))
        }
        Some(other) => Security::Other(other.to_owned()),
    };
    Ok(Invoke {
        id,
        service,
        operation,
        input,
        security,
    })
}

/// A string, or a vAPI `{"SECRET": "…"}` string.
fn string_field(v: Option<&Json>) -> String {
    match v {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Object(o)) => o
            .get("SECRET")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

/// Unwraps `{"OPTIONAL": x}` (to `x`, or `None` for null).
pub fn optional(v: Option<&Json>) -> Option<&Json> {
    match v {
        Some(Json::Object(o)) if o.contains_key("OPTIONAL") => {
            o.get("OPTIONAL").filter(|x| !x.is_null())
        }
        Some(Json::Null) | None => None,
        Some(x) => Some(x),
    }
}

/// Unwraps `{"STRUCTURE": {"name": {...}}}` to the fields.
pub fn structure(v: &Json) -> Option<&Map<String, Json>> {
    v.get("STRUCTURE")?
        .as_object()?
        .values()
        .next()?
        .as_object()
}

fn strings(v: Option<&Json>) -> Vec<String> {
    optional(v)
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Decodes the `filter` input of `com.vmware.vcenter.folder.list`.
pub fn folder_filter(input: &Map<String, Json>) -> Result<FolderFilter, Fault> {
    let Some(spec) = optional(input.get("filter")) else {
        return Ok(FolderFilter::default());
    };
    let f = structure(spec).ok_or_else(|| {
        Fault::invalid_argument("filter", "The folder filter is not a structure.")
    })?;
    let type_ = match optional(f.get("type")).and_then(Json::as_str) {
        None => None,
        Some(t) => Some(FolderType::from_vapi(t).ok_or_else(|| {
            Fault::invalid_argument("filter.type", format!("Unknown folder type '{t}'."))
        })?),
    };
    Ok(FolderFilter {
        folders: strings(f.get("folders")),
        names: strings(f.get("names")),
        type_,
        parent_folders: strings(f.get("parent_folders")),
        datacenters: strings(f.get("datacenters")),
    })
}

pub fn rpc_output(id: &Json, output: Json) -> Json {
    json!({"jsonrpc": "2.0", "id": id, "result": {"output": output}})
}

/// A vAPI standard error inside `result.error` (sent with HTTP 200).
pub fn rpc_fault(id: &Json, f: &Fault) -> Json {
    rpc_std_error(id, std_error_of(f), &message_id(f), &f.to_string())
}

pub fn rpc_std_error(id: &Json, e: StdError, message_id: &str, message: &str) -> Json {
    let msg = json!({"STRUCTURE": {"com.vmware.vapi.std.localizable_message": {
        "id": message_id, "default_message": message, "args": [],
        "params": {"OPTIONAL": null}, "localized": {"OPTIONAL": null}}}});
    let mut fields = json!({"messages": [msg], "data": {"OPTIONAL": null},
        "error_type": {"OPTIONAL": e.error_type}});
    if e.name == "unauthenticated" || e.name == "unauthorized" {
        fields["challenge"] = json!({"OPTIONAL": null});
    }
    let name = format!("com.vmware.vapi.std.errors.{}", e.name);
    json!({"jsonrpc": "2.0", "id": id, "result": {"error": {"ERROR": {name: fields}}}})
}

/// A JSON-RPC protocol error (`error`, not `result`).
pub fn rpc_error(e: &RpcError) -> Json {
    json!({"jsonrpc": "2.0", "id": e.id, "error": {"code": e.code, "message": e.message}})
}

pub fn secret(s: &str) -> Json {
    json!({"SECRET": s})
}

/// Writes `"created_time":"…","last_accessed_time":"…","user":"…"`: the fields of a
/// session's info, in the order `serde_json::Value` writes object keys (sorted), so the
/// whole answer is byte for byte what the `json!` forms serialize to. The times are
/// RFC 3339 (ASCII without `"` or `\`), so only the user name needs escaping.
fn session_info_fields(
    out: &mut Vec<u8>,
    user: &str,
    created: &DateTime<Utc>,
    last_accessed: &DateTime<Utc>,
) {
    let mut time = String::with_capacity(24);
    out.extend_from_slice(b"\"created_time\":\"");
    crate::soap::rfc3339_into(&mut time, created, SecondsFormat::Millis);
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\",\"last_accessed_time\":\"");
    time.clear();
    crate::soap::rfc3339_into(&mut time, last_accessed, SecondsFormat::Millis);
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\",\"user\":");
    json_into(out, user);
}

/// Appends `v` as JSON. Writing into a `Vec` cannot fail, and neither can serializing a
/// string or a `Value`.
fn json_into(out: &mut Vec<u8>, v: &(impl serde::Serialize + ?Sized)) {
    let _ = serde_json::to_writer(out, v);
}

/// The bytes of [`rest_session_info_bytes`] besides the user name: the braces, the keys,
/// the two quoted times and the name's quotes.
const REST_SESSION_INFO_FIXED: usize = 101;

/// What [`rpc_session_info`] is given room for: its fixed bytes (90 more than the REST
/// answer's), the name, and an id of up to 22 bytes, as ids are.
fn rpc_session_info_size(user: &str) -> usize {
    REST_SESSION_INFO_FIXED + 90 + 22 + user.len()
}

/// `rpc_output(id, session_info(s))`, serialized, from the fields it needs.
pub fn rpc_session_info(
    id: &Json,
    user: &str,
    created: &DateTime<Utc>,
    last_accessed: &DateTime<Utc>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(rpc_session_info_size(user));
    out.extend_from_slice(b"{\"id\":");
    json_into(&mut out, id);
    out.extend_from_slice(
        b",\"jsonrpc\":\"2.0\",\"result\":{\"output\":{\"STRUCTURE\":{\"com.vmware.cis.session.info\":{",
    );
    session_info_fields(&mut out, user, created, last_accessed);
    out.extend_from_slice(b"}}}}}");
    out
}

/// `rest_session_info(s).to_string()`, from the fields it needs.
pub fn rest_session_info_bytes(
    user: &str,
    created: &DateTime<Utc>,
    last_accessed: &DateTime<Utc>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(REST_SESSION_INFO_FIXED + user.len());
    out.push(b'{');
    session_info_fields(&mut out, user, created, last_accessed);
    out.push(b'}');
    out
}

/// The typed fast path of [`decode_invoke`]. Every object is read as a map (never a
/// sequence), every string borrowed, and a repeated key is an error, so whatever it
/// accepts, the `Value` path decodes to the same `Invoke`. Values of keys it does not
/// know are checked as strictly as a `Value` would (numbers in range, valid strings),
/// without being kept.
mod fast {
    use super::{Invoke, Security};
    use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
    use serde_json::{Map, Value as Json};
    use std::fmt;
    use std::marker::PhantomData;

    pub fn decode(body: &[u8]) -> Option<Invoke> {
        // Checked once here, the body's strings are not re-checked one by one (invalid
        // UTF-8 goes the `Value` path, which words the error).
        let text = std::str::from_utf8(body).ok()?;
        let req: Request<'_> = serde_json::from_str(text).ok()?;
        if req.jsonrpc != Some("2.0") || req.method != Some("invoke") {
            return None;
        }
        let params = req.params?;
        let sec = params.ctx.and_then(|c| c.security);
        let security = match sec.as_ref().and_then(|s| s.scheme) {
            None => Security::None,
            Some("com.vmware.vapi.std.security.user_pass") => {
                let s = sec.as_ref()?;
                Security::UserPass {
                    user: super::string_field(s.user.as_ref()),
                    password: super::string_field(s.password.as_ref()),
                }
            }
            Some("com.vmware.vapi.std.security.session_id") => Security::SessionId(
                super::string_field(sec.as_ref().and_then(|s| s.session.as_ref())),
            ),
            Some(other) => Security::Other(other.to_owned()),
        };
        Some(Invoke {
            id: req.id.unwrap_or(Json::Null),
            service: params.service?.to_owned(),
            operation: params.operation?.to_owned(),
            input: params
                .input
                .and_then(|i| i.structure)
                .and_then(|s| s.operation_input)
                .unwrap_or_default(),
            security,
        })
    }

    /// Reads an object's fields: `$field => $key` pairs, each an `Option`.
    macro_rules! object {
        ($name:ident<$lt:lifetime> { $($field:ident: $ty:ty = $key:literal),* $(,)? }) => {
            #[derive(Default)]
            pub struct $name<$lt> {
                $(pub $field: Option<$ty>,)*
                _lt: PhantomData<&$lt ()>,
            }

            impl<'de: $lt, $lt> Deserialize<'de> for $name<$lt> {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    struct V<$lt>(PhantomData<&$lt ()>);
                    impl<'de: $lt, $lt> Visitor<'de> for V<$lt> {
                        type Value = $name<$lt>;
                        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                            f.write_str("an object")
                        }
                        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                            let mut out = $name::default();
                            while let Some(key) = m.next_key::<&'de str>()? {
                                match key {
                                    $($key => {
                                        if out.$field.is_some() {
                                            return Err(de::Error::duplicate_field($key));
                                        }
                                        // `null` reads as absent, as on the `Value` path.
                                        out.$field = m.next_value::<Option<$ty>>()?;
                                        if out.$field.is_none() {
                                            // A later repeat would be accepted here but
                                            // win on the `Value` path: refuse instead.
                                            return Err(de::Error::custom("null field"));
                                        }
                                    })*
                                    _ => {
                                        m.next_value::<Checked>()?;
                                    }
                                }
                            }
                            Ok(out)
                        }
                    }
                    d.deserialize_map(V(PhantomData))
                }
            }
        };
    }

    /// Any JSON value, parsed as `serde_json::Value` parses it (`deserialize_any`, so
    /// numbers are converted and strings unescaped), and dropped. `IgnoredAny` would
    /// skip numbers without the range check.
    struct Checked;

    impl<'de> Deserialize<'de> for Checked {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Checked)
        }
    }

    impl<'de> Visitor<'de> for Checked {
        type Value = Checked;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_unit<E>(self) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_none<E>(self) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Checked, D::Error> {
            Checked::deserialize(d)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Checked, A::Error> {
            while s.next_element::<Checked>()?.is_some() {}
            Ok(Checked)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Checked, A::Error> {
            while m.next_key::<Checked>()?.is_some() {
                m.next_value::<Checked>()?;
            }
            Ok(Checked)
        }
    }

    object!(Request<'a> {
        jsonrpc: &'a str = "jsonrpc",
        method: &'a str = "method",
        params: Params<'a> = "params",
        id: Json = "id",
    });
    object!(Params<'a> {
        service: &'a str = "serviceId",
        operation: &'a str = "operationId",
        input: Input<'a> = "input",
        ctx: Ctx<'a> = "ctx",
    });
    object!(Input<'a> {
        structure: Structure<'a> = "STRUCTURE",
    });
    object!(Structure<'a> {
        operation_input: Map<String, Json> = "operation-input",
    });
    object!(Ctx<'a> {
        security: SecurityCtx<'a> = "securityCtx",
    });
    object!(SecurityCtx<'a> {
        scheme: &'a str = "schemeId",
        user: Json = "userName",
        password: Json = "password",
        session: Json = "sessionId",
    });
}

pub fn session_info(s: &UserSession) -> Json {
    json!({"STRUCTURE": {"com.vmware.cis.session.info": {
        "user": s.user_name,
        "created_time": time(&s.login_time),
        "last_accessed_time": time(&s.last_active_time)}}})
}

pub fn folder_summaries(list: &[(String, String, &str)]) -> Json {
    Json::Array(
        list.iter()
            .map(|(folder, name, ty)| {
                json!({"STRUCTURE": {"com.vmware.vcenter.folder.summary": {
                    "folder": folder, "name": name, "type": ty}}})
            })
            .collect(),
    )
}

pub fn compute_policies(list: &[ComputePolicy]) -> Json {
    Json::Array(
        list.iter()
            .map(|p| {
                json!({"STRUCTURE": {"com.vmware.vcenter.compute.policies.summary": {
                    "policy": p.policy, "name": p.name, "description": p.description,
                    "capability": p.capability}}})
            })
            .collect(),
    )
}

// ---- REST ------------------------------------------------------------------------------

/// `/api` error body: the error's fields, flattened.
pub fn rest_error(f: &Fault) -> (u16, Json) {
    let e = std_error_of(f);
    (e.status, rest_error_body(e, &message_id(f), &f.to_string()))
}

pub fn rest_error_body(e: StdError, message_id: &str, message: &str) -> Json {
    json!({"error_type": e.error_type,
        "messages": [{"args": [], "default_message": message, "id": message_id}]})
}

/// Legacy `/rest` error body.
pub fn legacy_error(f: &Fault) -> (u16, Json) {
    let e = std_error_of(f);
    (
        e.status,
        json!({"type": format!("com.vmware.vapi.std.errors.{}", e.name),
            "value": {"messages": [{"args": [], "default_message": f.to_string(),
                "id": message_id(f)}]}}),
    )
}

pub fn rest_session_info(s: &UserSession) -> Json {
    json!({"user": s.user_name, "created_time": time(&s.login_time),
        "last_accessed_time": time(&s.last_active_time)})
}

pub fn rest_folders(list: &[(String, String, &str)]) -> Json {
    Json::Array(
        list.iter()
            .map(|(folder, name, ty)| json!({"folder": folder, "name": name, "type": ty}))
            .collect(),
    )
}

pub fn rest_compute_policies(list: &[ComputePolicy]) -> Json {
    Json::Array(
        list.iter()
            .map(|p| {
                json!({"policy": p.policy, "name": p.name, "description": p.description,
                "capability": p.capability})
            })
            .collect(),
    )
}

/// Credentials from `Authorization: Basic …`.
pub fn basic_auth(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let b64 = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_create_vsphere_client_login() {
        let body = br#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"com.vmware.cis.session","operationId":"create","input":{"STRUCTURE":{"operation-input":{}}},"ctx":{"appCtx":{"opId":"x"},"securityCtx":{"schemeId":"com.vmware.vapi.std.security.user_pass","userName":"U","password":"P"}}},"id":"0"}"#;
        let i = decode_invoke(body).unwrap();
        assert_eq!(i.id, json!("0"));
        assert_eq!(i.service, "com.vmware.cis.session");
        assert_eq!(
            i.security,
            Security::UserPass {
                user: "U".into(),
                password: "P".into()
            }
        );
    }

    #[test]
    fn the_fast_path_decodes_like_the_value_path() {
        let get = r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"com.vmware.cis.session","operationId":"get","input":{"STRUCTURE":{"operation-input":{}}},"ctx":{"appCtx":{"opId":"x"},"securityCtx":{"schemeId":"com.vmware.vapi.std.security.session_id","sessionId":"abc"}}},"id":"1"}"#;
        // Taken by the fast path.
        let fast_ones = [
            get,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s","operationId":"o","ctx":{"securityCtx":{"schemeId":"com.vmware.vapi.std.security.user_pass","userName":"u","password":{"SECRET":"p"}}}},"id":7}"#,
            r#"{"id":{"a":[1,2]},"params":{"operationId":"list","serviceId":"com.vmware.vcenter.folder","input":{"STRUCTURE":{"operation-input":{"filter":{"OPTIONAL":null}}}}},"method":"invoke","jsonrpc":"2.0","extra":[true,null,1.5]}"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s","operationId":"o","ctx":{"securityCtx":{"schemeId":"saml"}}}}"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s","operationId":"o","input":{"STRUCTURE":{"other":{}}},"ctx":{"securityCtx":{"sessionId":"x"}}}}"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s","operationId":"o","ctx":{"appCtx":{"a":[18446744073709551616,-9223372036854775809,1.5e300,"\u00e9\n",{"k":null,"k":true}]}}}}"#,
        ];
        for b in fast_ones {
            let f = fast::decode(b.as_bytes()).unwrap_or_else(|| panic!("not fast: {b}"));
            assert_eq!(Ok(f), decode_invoke_value(b.as_bytes()), "{b}");
        }
        // Not taken by the fast path; the Value path answers.
        let slow_ones = [
            r#"{"jsonrpc":"2.0","jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s","operationId":"o"}}"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s","serviceId":"t","operationId":"o"}}"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":["s","o"]}"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s\u0041","operationId":"o"}}"#,
            r#"{"jsonrp\u0063":"2.0","method":"invoke","params":{"serviceId":"s","operationId":"o"}}"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s","operationId":"o","input":{"STRUCTURE":{"operation-input":[]}}}}"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s","operationId":"o","input":"x","ctx":{"securityCtx":"y"}}}"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s","operationId":"o","ctx":{"securityCtx":{"schemeId":5}}}}"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s","operationId":"o"},"id":null}"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s","operationId":"o"},"x":1e400}"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s","operationId":"o","ctx":{"appCtx":{"a":[-1e999]}}}}"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"s","operationId":"o"}} x"#,
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":null,"operationId":"o"}}"#,
            r#"{"jsonrpc":"2.0","method":"other","params":{"serviceId":"s","operationId":"o"}}"#,
            r#"{"jsonrpc":"2.0","method":"invoke"}"#,
            r#"[1]"#,
        ];
        for b in slow_ones {
            assert!(fast::decode(b.as_bytes()).is_none(), "fast: {b}");
            assert_eq!(
                decode_invoke(b.as_bytes()),
                decode_invoke_value(b.as_bytes())
            );
        }
        let not_utf8 = b"{\"jsonrpc\":\"2.0\",\"method\":\"invoke\",\"params\":{\"serviceId\":\"\xff\",\"operationId\":\"o\"}}";
        assert!(fast::decode(not_utf8).is_none());
        assert_eq!(decode_invoke(not_utf8).unwrap_err().code, -32700);
        assert!(decode_invoke(slow_ones[0].as_bytes()).is_ok());
        for bad_number in &slow_ones[9..11] {
            assert_eq!(
                decode_invoke(bad_number.as_bytes()).unwrap_err().code,
                -32700
            );
        }
    }

    #[test]
    fn typed_session_info_is_byte_identical_to_the_json_forms() {
        use chrono::TimeZone;
        let us = UserSession {
            key: "k".into(),
            user_name: "VSPHERE.LOCAL\\\"ü\u{1}\"".into(),
            full_name: String::new(),
            login_time: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            last_active_time: Utc.timestamp_opt(1_800_000_000, 123_456_789).unwrap(),
            locale: String::new(),
            message_locale: String::new(),
            extension_session: false,
            ip_address: String::new(),
            user_agent: String::new(),
            call_count: 0,
        };
        // A year past 9999 takes chrono's formatting path.
        let far = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
        let names = ["", "plain", "\u{7f}\u{1f}\\/\u{2028}</tag>", &us.user_name];
        for (name, last) in names.iter().zip([us.last_active_time, far].iter().cycle()) {
            let us = UserSession {
                user_name: (*name).to_owned(),
                last_active_time: *last,
                ..us.clone()
            };
            for id in [json!("1"), json!(7), Json::Null, json!({"b": 1, "a": [2]})] {
                let typed =
                    rpc_session_info(&id, &us.user_name, &us.login_time, &us.last_active_time);
                let reference = rpc_output(&id, session_info(&us)).to_string();
                assert_eq!(String::from_utf8(typed).unwrap(), reference);
            }
            let typed =
                rest_session_info_bytes(&us.user_name, &us.login_time, &us.last_active_time);
            assert_eq!(
                String::from_utf8(typed).unwrap(),
                rest_session_info(&us).to_string()
            );
        }
    }

    /// The answers are written into a buffer of the right size, not grown on the way: the
    /// REST answer exactly, the JSON-RPC one with room for an id such as the SDK's.
    #[test]
    fn session_infos_fit_their_buffers() {
        use chrono::TimeZone;
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let user = "administrator@vsphere.local";
        let rest = rest_session_info_bytes(user, &t, &t);
        assert_eq!(rest.len(), REST_SESSION_INFO_FIXED + user.len());
        assert_eq!(rest.capacity(), rest.len());
        for id in [json!("1"), json!("0123456789abcdef0123"), json!(1234567)] {
            let rpc = rpc_session_info(&id, user, &t, &t);
            assert!(rpc.len() <= rpc_session_info_size(user), "{id}");
            assert_eq!(rpc.capacity(), rpc_session_info_size(user), "{id}");
        }
    }

    #[test]
    fn protocol_errors_have_json_rpc_codes() {
        assert_eq!(decode_invoke(b"{nope").unwrap_err().code, -32700);
        assert_eq!(
            decode_invoke(br#"{"jsonrpc":"1.0","id":"1"}"#)
                .unwrap_err()
                .code,
            -32600
        );
        let e = decode_invoke(br#"{"jsonrpc":"2.0","method":"foo","id":"7"}"#).unwrap_err();
        assert_eq!((e.code, e.id), (-32601, json!("7")));
    }

    #[test]
    fn decodes_the_folder_filter_the_sdk_sends() {
        let input: Map<String, Json> = serde_json::from_str(r#"{"filter":{"OPTIONAL":{"STRUCTURE":{"com.vmware.vcenter.folder.filter_spec":{"folders":{"OPTIONAL":["group-d1"]},"names":{"OPTIONAL":["Datacenters"]},"type":{"OPTIONAL":"DATACENTER"},"parent_folders":{"OPTIONAL":null},"datacenters":{"OPTIONAL":null}}}}}}"#).unwrap();
        let f = folder_filter(&input).unwrap();
        assert_eq!(f.folders, ["group-d1"]);
        assert_eq!(f.names, ["Datacenters"]);
        assert_eq!(f.type_, Some(FolderType::Datacenter));
        assert!(f.parent_folders.is_empty());
        let bad: Map<String, Json> = serde_json::from_str(
            r#"{"filter":{"OPTIONAL":{"STRUCTURE":{"x":{"type":{"OPTIONAL":"BOGUS"}}}}}}"#,
        )
        .unwrap();
        assert!(matches!(
            folder_filter(&bad).unwrap_err(),
            Fault::InvalidArgument { .. }
        ));
    }

    #[test]
    fn faults_map_to_the_std_errors_the_sdk_raises() {
        let body = rpc_fault(&json!("3"), &Fault::InvalidLogin);
        assert_eq!(body["id"], json!("3"));
        let err = &body["result"]["error"]["ERROR"]["com.vmware.vapi.std.errors.unauthenticated"];
        assert_eq!(err["error_type"]["OPTIONAL"], json!("UNAUTHENTICATED"));
        assert!(
            err["messages"][0]["STRUCTURE"]["com.vmware.vapi.std.localizable_message"]
                ["default_message"]
                .is_string()
        );
        assert_eq!(rest_error(&Fault::InvalidLogin).0, 401);
        assert_eq!(
            std_error_of(&Fault::DuplicateName {
                name: "a".into(),
                parent: vsess_core::MoRef::new("Folder", "group-d1")
            })
            .name,
            "already_exists"
        );
    }

    #[test]
    fn basic_auth_parses() {
        assert_eq!(
            basic_auth("Basic dTpwOng="),
            Some(("u".into(), "p:x".into()))
        );
        assert_eq!(basic_auth("Bearer x"), None);
    }
}
