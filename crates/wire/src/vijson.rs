//! VI/JSON: the vim API over JSON at `/sdk/vim25/{release}/{Type}/{moId}/{name}`.
//!
//! A GET reads a property (`Fetch`); a POST calls a method with its parameters by name in
//! a JSON object. Data objects carry `_typeName`; values in an `Any` position (a
//! PropertyCollector `val`) are boxed as `{"_typeName": "string", "_value": …}`.
use crate::vim::{check_receiver, Outcome, VimCall};
use serde_json::{json, Map, Value as Json};
use vsess_core::{
    AboutInfo, Fault, MoRef, ObjectContent, PropertyFilterSpec, PropertySpec, ServiceRequestSpec,
    UserSession, Value,
};

/// Whether a release in a VI/JSON URL is one vsess answers: the four-part 7.x and 8.x
/// releases it advertises in `vimServiceVersions.xml`, and 9.0.0.0 and 9.1.0.0, which
/// current govc and pyVmomi-era tools send.
pub fn release_supported(release: &str) -> bool {
    release == "9.0.0.0"
        || release == "9.1.0.0"
        || crate::soap::API_VERSIONS
            .iter()
            .any(|v| *v == release && v.split('.').count() == 4 && !v.starts_with('6'))
}

/// The releases, for error messages.
pub fn releases() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = crate::soap::API_VERSIONS
        .iter()
        .copied()
        .filter(|v| v.split('.').count() == 4)
        .collect();
    v.insert(0, "9.0.0.0");
    v.insert(0, "9.1.0.0");
    v
}

/// The HTTP status a fault gets on VI/JSON. The VI/JSON specification documents every
/// fault as 500, real vCenter 8.0.3 answers so, and govmomi parses a fault body only on
/// a 500.
pub fn status_of(_f: &Fault) -> u16 {
    500
}

fn invalid(msg: impl Into<String>) -> Fault {
    Fault::InvalidRequest(msg.into())
}

fn mo_ref_from(v: &Json) -> Result<MoRef, Fault> {
    let t = v.get("type").and_then(Json::as_str);
    let val = v.get("value").and_then(Json::as_str);
    match (t, val) {
        (Some(t), Some(val)) => Ok(MoRef::new(t, val)),
        _ => Err(invalid(
            "A ManagedObjectReference needs \"type\" and \"value\".",
        )),
    }
}

struct Args<'a> {
    method: &'a str,
    map: Map<String, Json>,
}

impl Args<'_> {
    fn str(&self, name: &str) -> Result<String, Fault> {
        self.opt_str(name)?.ok_or_else(|| {
            invalid(format!(
                "{} requires the parameter '{name}', which is missing.",
                self.method
            ))
        })
    }

    fn opt_str(&self, name: &str) -> Result<Option<String>, Fault> {
        match self.map.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(format!("The parameter '{name}' must be a string."))),
        }
    }

    fn get(&self, name: &str) -> Result<&Json, Fault> {
        self.map.get(name).ok_or_else(|| {
            invalid(format!(
                "{} requires the parameter '{name}', which is missing.",
                self.method
            ))
        })
    }
}

/// Decodes one VI/JSON request into a call.
pub fn decode(
    type_: &str,
    mo_id: &str,
    name: &str,
    is_get: bool,
    body: &[u8],
) -> Result<VimCall, Fault> {
    let this = MoRef::new(type_, mo_id);
    if is_get {
        check_receiver(&this, "Fetch")?;
        return Ok(VimCall::Fetch {
            obj: this,
            prop: name.to_owned(),
        });
    }
    check_receiver(&this, name)?;
    let map = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Json>(body) {
            Ok(Json::Object(m)) => m,
            Ok(_) => {
                return Err(invalid(
                    "The request body must be a JSON object of parameters.",
                ))
            }
            Err(e) => return Err(invalid(format!("The request body is not valid JSON: {e}."))),
        }
    };
    let a = Args { method: name, map };
    Ok(match name {
        "RetrieveServiceContent" => VimCall::RetrieveServiceContent,
        "CurrentTime" => VimCall::CurrentTime,
        "Fetch" => VimCall::Fetch {
            obj: this,
            prop: a.str("prop")?,
        },
        "RetrieveProperties" => VimCall::RetrieveProperties {
            specs: spec_set(a.get("specSet")?)?,
        },
        "RetrievePropertiesEx" => VimCall::RetrievePropertiesEx {
            specs: spec_set(a.get("specSet")?)?,
        },
        "Login" => VimCall::Login {
            user: a.str("userName")?,
            password: a.str("password")?,
            locale: a.opt_str("locale")?,
        },
        "Logout" => VimCall::Logout,
        "SetLocale" => VimCall::SetLocale {
            locale: a.str("locale")?,
        },
        "UpdateServiceMessage" => VimCall::UpdateServiceMessage {
            message: a.str("message")?,
        },
        "TerminateSession" => VimCall::TerminateSession {
            keys: a
                .get("sessionId")?
                .as_array()
                .ok_or_else(|| invalid("sessionId must be an array of session keys."))?
                .iter()
                .map(|k| {
                    k.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| invalid("sessionId must hold strings."))
                })
                .collect::<Result<_, _>>()?,
        },
        "SessionIsActive" => VimCall::SessionIsActive {
            key: a.str("sessionID")?,
            user: a.str("userName")?,
        },
        "AcquireCloneTicket" => VimCall::AcquireCloneTicket,
        "CloneSession" => VimCall::CloneSession {
            ticket: a.str("cloneTicket")?,
        },
        "ImpersonateUser" => VimCall::ImpersonateUser {
            user: a.str("userName")?,
            locale: a.opt_str("locale")?,
        },
        "AcquireLocalTicket" => VimCall::AcquireLocalTicket {
            user: a.str("userName")?,
        },
        "AcquireGenericServiceTicket" => {
            let spec = a.get("spec")?;
            let s = |k: &str| spec.get(k).and_then(Json::as_str).map(str::to_owned);
            let spec = match spec.get("_typeName").and_then(Json::as_str) {
                Some("SessionManagerVmomiServiceRequestSpec") => ServiceRequestSpec::Vmomi {
                    method: s("method").ok_or_else(|| invalid("spec.method is missing."))?,
                },
                Some("SessionManagerHttpServiceRequestSpec") | None => ServiceRequestSpec::Http {
                    method: s("method"),
                    url: s("url").ok_or_else(|| invalid("spec.url is missing."))?,
                },
                Some(other) => {
                    return Err(Fault::invalid_argument(
                        "spec",
                        format!("The service request spec type '{other}' is not supported."),
                    ))
                }
            };
            VimCall::AcquireGenericServiceTicket { spec }
        }
        "LoginBySSPI" => VimCall::UnsupportedLogin {
            method: "LoginBySSPI",
        },
        "LoginByToken" => VimCall::UnsupportedLogin {
            method: "LoginByToken",
        },
        "LoginExtensionByCertificate" => VimCall::UnsupportedLogin {
            method: "LoginExtensionByCertificate",
        },
        "LoginExtensionBySubjectName" => VimCall::UnsupportedLogin {
            method: "LoginExtensionBySubjectName",
        },
        "CreateDatacenter" => VimCall::CreateDatacenter {
            folder: this,
            name: a.str("name")?,
        },
        "CreateFolder" => VimCall::CreateFolder {
            folder: this,
            name: a.str("name")?,
        },
        other => {
            return Err(Fault::MethodNotFound {
                receiver: this,
                method: other.to_owned(),
            })
        }
    })
}

fn spec_set(v: &Json) -> Result<Vec<PropertyFilterSpec>, Fault> {
    let arr = v
        .as_array()
        .ok_or_else(|| invalid("specSet must be an array."))?;
    arr.iter()
        .map(|spec| {
            let props = spec
                .get("propSet")
                .and_then(Json::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| PropertySpec {
                            type_: p
                                .get("type")
                                .and_then(Json::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            all: p.get("all").and_then(Json::as_bool).unwrap_or(false),
                            paths: p
                                .get("pathSet")
                                .and_then(Json::as_array)
                                .map(|a| {
                                    a.iter()
                                        .filter_map(Json::as_str)
                                        .map(str::to_owned)
                                        .collect()
                                })
                                .unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let objects = spec
                .get("objectSet")
                .and_then(Json::as_array)
                .map(|os| {
                    os.iter()
                        .map(|o| mo_ref_from(o.get("obj").unwrap_or(&Json::Null)))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default();
            Ok(PropertyFilterSpec { props, objects })
        })
        .collect()
}

// ---- encoding --------------------------------------------------------------------------

pub fn mo_ref(r: &MoRef) -> Json {
    json!({"_typeName": "ManagedObjectReference", "type": r.type_, "value": r.value})
}

pub fn user_session(s: &UserSession) -> Json {
    json!({
        "_typeName": "UserSession",
        "key": s.key,
        "userName": s.user_name,
        "fullName": s.full_name,
        "loginTime": crate::soap::time(&s.login_time),
        "lastActiveTime": crate::soap::time(&s.last_active_time),
        "locale": s.locale,
        "messageLocale": s.message_locale,
        "extensionSession": s.extension_session,
        "ipAddress": s.ip_address,
        "userAgent": s.user_agent,
        "callCount": s.call_count,
    })
}

pub fn service_content(a: &AboutInfo) -> Json {
    let mut m = Map::new();
    m.insert("_typeName".into(), json!("ServiceContent"));
    for (name, ty, id) in crate::soap::CONTENT_BEFORE_ABOUT {
        m.insert((*name).into(), mo_ref(&MoRef::new(ty, id)));
    }
    m.insert(
        "about".into(),
        json!({
            "_typeName": "AboutInfo",
            "name": a.name, "fullName": a.full_name, "vendor": a.vendor,
            "version": a.version, "build": a.build, "localeVersion": "INTL",
            "localeBuild": "000", "osType": a.os_type, "productLineId": a.product_line_id,
            "apiType": a.api_type, "apiVersion": a.api_version,
            "instanceUuid": a.instance_uuid, "licenseProductName": a.license_product_name,
            "licenseProductVersion": a.license_product_version,
        }),
    );
    for (name, ty, id) in crate::soap::CONTENT_AFTER_ABOUT {
        m.insert((*name).into(), mo_ref(&MoRef::new(ty, id)));
    }
    Json::Object(m)
}

/// A value where its type is known from the property's declaration.
pub fn value(v: &Value) -> Json {
    match v {
        Value::Session(s) => user_session(s),
        Value::Sessions(list) => Json::Array(list.iter().map(user_session).collect()),
        Value::Str(s) => json!(s),
        Value::Strs(list) => json!(list),
        Value::Bool(b) => json!(b),
        Value::Time(t) => json!(crate::soap::time(t)),
        Value::Content(a) => service_content(a),
        Value::Ref(r) => mo_ref(r),
        Value::Refs(list) => Json::Array(list.iter().map(mo_ref).collect()),
        Value::Tags(keys) => Json::Array(
            keys.iter()
                .map(|k| json!({"_typeName": "Tag", "key": k}))
                .collect(),
        ),
    }
}

/// A value in an `Any` position: primitives and arrays are boxed with their type.
fn any(v: &Value) -> Json {
    let boxed = |t: &str, x: Json| json!({"_typeName": t, "_value": x});
    match v {
        Value::Sessions(_) => boxed("ArrayOfUserSession", value(v)),
        Value::Str(_) => boxed("string", value(v)),
        Value::Strs(_) => boxed("ArrayOfString", value(v)),
        Value::Bool(_) => boxed("boolean", value(v)),
        Value::Time(_) => boxed("dateTime", value(v)),
        Value::Refs(_) => boxed("ArrayOfManagedObjectReference", value(v)),
        Value::Tags(_) => boxed("ArrayOfTag", value(v)),
        Value::Session(_) | Value::Content(_) | Value::Ref(_) => value(v),
    }
}

fn object_content(oc: &ObjectContent) -> Json {
    json!({
        "_typeName": "ObjectContent",
        "obj": mo_ref(&oc.obj),
        "propSet": oc.props.iter().map(|(n, v)| json!({
            "_typeName": "DynamicProperty", "name": n, "val": any(v)
        })).collect::<Vec<_>>(),
    })
}

/// The JSON body of an outcome; `None` means 204 No Content.
pub fn outcome(o: &Outcome) -> Option<Json> {
    match o {
        Outcome::Empty | Outcome::Value(None) => None,
        Outcome::Value(Some(v)) => Some(value(v)),
        Outcome::NewSession(_, s) | Outcome::Session(s) => Some(user_session(s)),
        Outcome::Objects { ex: false, objects } => {
            Some(Json::Array(objects.iter().map(object_content).collect()))
        }
        Outcome::Objects { ex: true, objects } if objects.is_empty() => None,
        Outcome::Objects { ex: true, objects } => Some(json!({
            "_typeName": "RetrieveResult",
            "objects": objects.iter().map(object_content).collect::<Vec<_>>(),
        })),
        Outcome::LocalTicket(t) => Some(json!({
            "_typeName": "SessionManagerLocalTicket",
            "userName": t.user_name, "passwordFilePath": t.password_file_path,
        })),
        Outcome::ServiceTicket(t) => {
            let mut m = json!({"_typeName": "SessionManagerGenericServiceTicket", "id": t.id});
            if let Some(h) = &t.host_name {
                m["hostName"] = json!(h);
            }
            Some(m)
        }
    }
}

/// The one place a `Fault` becomes a VI/JSON error: its status and body.
pub fn fault(f: &Fault) -> (u16, Json) {
    let mut m = json!({"_typeName": f.type_name(), "faultstring": f.to_string()});
    match f {
        Fault::NoPermission { object, privilege }
        | Fault::NotAuthenticated { object, privilege } => {
            m["object"] = mo_ref(object);
            m["privilegeId"] = json!(privilege.id());
        }
        Fault::InvalidArgument {
            property: Some(p), ..
        } => m["invalidProperty"] = json!(p),
        Fault::MethodNotFound { receiver, method } => {
            m["receiver"] = mo_ref(receiver);
            m["method"] = json!(method);
        }
        Fault::ManagedObjectNotFound(obj) => m["obj"] = mo_ref(obj),
        Fault::InvalidProperty(name) => m["name"] = json!(name),
        Fault::DuplicateName { name, parent } => {
            m["name"] = json!(name);
            m["object"] = mo_ref(parent);
        }
        Fault::InvalidName { name } => m["name"] = json!(name),
        Fault::SessionLimit { .. } | Fault::SystemError(_) | Fault::Unavailable(_) => {
            m["reason"] = json!(f.to_string())
        }
        _ => {}
    }
    (status_of(f), m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_login_and_property_reads() {
        let c = decode(
            "SessionManager",
            "SessionManager",
            "Login",
            false,
            br#"{"userName":"u","password":"p"}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            VimCall::Login {
                user: "u".into(),
                password: "p".into(),
                locale: None
            }
        );
        let c = decode("Folder", "group-d3", "tag", true, b"").unwrap();
        assert_eq!(
            c,
            VimCall::Fetch {
                obj: MoRef::new("Folder", "group-d3"),
                prop: "tag".into()
            }
        );
        let c = decode(
            "SessionManager",
            "SessionManager",
            "TerminateSession",
            false,
            br#"{"sessionId":["a","b"]}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            VimCall::TerminateSession {
                keys: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn bad_requests_get_faults_with_statuses() {
        let e = decode("SessionManager", "SessionManager", "Login", false, b"{nope").unwrap_err();
        assert_eq!((e.type_name(), status_of(&e)), ("InvalidRequest", 500));
        let e = decode("SessionManager", "SessionManager", "Frob", false, b"{}").unwrap_err();
        assert_eq!(e.type_name(), "MethodNotFound");
        let e = decode("SessionManager", "Nope", "Logout", false, b"").unwrap_err();
        assert_eq!(e.type_name(), "ManagedObjectNotFound");
        let e = decode(
            "SessionManager",
            "SessionManager",
            "Login",
            false,
            br#"{"userName":"u"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("password"));
        let (status, body) = fault(&Fault::InvalidLogin);
        assert_eq!(status, 500);
        assert_eq!(body["_typeName"], "InvalidLogin");
        assert!(body["faultstring"].as_str().unwrap().contains("incorrect"));
    }

    #[test]
    fn releases_real_clients_send_are_accepted() {
        for r in [
            "7.0.3.0", "8.0.1.0", "8.0.2.0", "8.0.3.0", "9.0.0.0", "9.1.0.0",
        ] {
            assert!(release_supported(r), "{r}");
        }
        for r in ["8.0", "6.5", "10.0.0.0", "8.0.3", ""] {
            assert!(!release_supported(r), "{r}");
        }
    }

    #[test]
    fn any_values_are_boxed() {
        let oc = ObjectContent {
            obj: MoRef::session_manager(),
            props: vec![("message".into(), Value::Str("hi".into()))],
        };
        let j = outcome(&Outcome::Objects {
            ex: true,
            objects: vec![oc],
        })
        .unwrap();
        assert_eq!(
            j["objects"][0]["propSet"][0]["val"],
            json!({"_typeName": "string", "_value": "hi"})
        );
    }
}
