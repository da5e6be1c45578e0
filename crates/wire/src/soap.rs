//! vim25 SOAP, the way pyVmomi and govc speak it.
//!
//! Decoding: an envelope becomes a [`VimCall`] (the method, its checked `_this`, and its
//! typed arguments). `versionId` attributes and `SOAPAction` are ignored. Encoding: each
//! response shape, and [`fault`], the one place a [`Fault`] becomes a SOAP fault.
use crate::vim::{check_receiver, Outcome, VimCall};
use crate::xml::{escape_into, Doc, El, XmlError};
use chrono::{DateTime, SecondsFormat, Utc};
use vsess_core::{
    AboutInfo, Fault, GenericServiceTicket, LocalTicket, MoRef, ObjectContent, PropertyFilterSpec,
    PropertySpec, ServiceRequestSpec, UserSession, Value,
};

/// The API versions vsess speaks, newest first; the first is `<version>`.
pub const API_VERSIONS: &[&str] = &[
    "8.0.3.0", "8.0.2.0", "8.0.1.0", "8.0.0.2", "8.0.0.1", "8.0.0.0", "7.0.3.2", "7.0.3.1",
    "7.0.3.0", "7.0.2.1", "7.0.2.0", "7.0.1.1", "7.0.1.0", "7.0.0.2", "7.0.0.0", "6.9.1", "6.8.7",
    "6.7.3", "6.7.2", "6.7.1", "6.7", "6.5", "6.0", "5.5", "5.1", "5.0", "4.1", "4.0",
];

/// `GET /sdk/vimServiceVersions.xml`.
pub fn vim_service_versions() -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<namespaces version=\"1.0\">\n <namespace>\n  <name>urn:vim25</name>\n",
    );
    s.push_str(&format!(
        "  <version>{}</version>\n  <priorVersions>\n",
        API_VERSIONS[0]
    ));
    for v in &API_VERSIONS[1..] {
        s.push_str(&format!("   <version>{v}</version>\n"));
    }
    s.push_str("  </priorVersions>\n </namespace>\n</namespaces>\n");
    s
}

fn invalid(msg: impl Into<String>) -> Fault {
    Fault::InvalidRequest(msg.into())
}

impl From<XmlError> for Fault {
    fn from(e: XmlError) -> Self {
        invalid(format!("The request is not a valid SOAP message: {e}."))
    }
}

fn mo_ref(el: El<'_, '_>) -> Result<MoRef, Fault> {
    let type_ = el
        .attr("type")
        .ok_or_else(|| invalid(format!("<{}> has no type attribute.", el.name())))?;
    Ok(MoRef::new(type_, el.text().trim()))
}

fn required<'d, 'a>(call: El<'d, 'a>, name: &str) -> Result<El<'d, 'a>, Fault> {
    call.child(name).ok_or_else(|| {
        invalid(format!(
            "{} requires the argument '{name}', which is missing.",
            call.name()
        ))
    })
}

fn text(call: El<'_, '_>, name: &str) -> Result<String, Fault> {
    Ok(required(call, name)?.text().to_owned())
}

fn opt_text(call: El<'_, '_>, name: &str) -> Option<String> {
    call.child(name).map(|e| e.text().to_owned())
}

/// Decodes a SOAP request body into a call.
pub fn decode(body: &[u8]) -> Result<VimCall, Fault> {
    let doc = Doc::parse(body)?;
    let env = doc.root();
    if env.name() != "Envelope" {
        return Err(invalid("The request is not a SOAP envelope."));
    }
    let body = env
        .child("Body")
        .ok_or_else(|| invalid("The SOAP envelope has no Body."))?;
    let call = body
        .first_child()
        .ok_or_else(|| invalid("The SOAP Body names no method."))?;
    let this = mo_ref(required(call, "_this")?)?;
    let method = call.name();
    check_receiver(&this, method)?;
    Ok(match method {
        "RetrieveServiceContent" => VimCall::RetrieveServiceContent,
        "CurrentTime" => VimCall::CurrentTime,
        "Fetch" => VimCall::Fetch {
            obj: this,
            prop: required(call, "prop")?.text().trim().to_owned(),
        },
        "RetrieveProperties" => VimCall::RetrieveProperties {
            specs: spec_set(call)?,
        },
        "RetrievePropertiesEx" => VimCall::RetrievePropertiesEx {
            specs: spec_set(call)?,
        },
        "Login" => VimCall::Login {
            user: text(call, "userName")?,
            password: text(call, "password")?,
            locale: opt_text(call, "locale"),
        },
        "Logout" => VimCall::Logout,
        "SetLocale" => VimCall::SetLocale {
            locale: text(call, "locale")?,
        },
        "UpdateServiceMessage" => VimCall::UpdateServiceMessage {
            message: text(call, "message")?,
        },
        "TerminateSession" => {
            let keys: Vec<String> = call
                .children_named("sessionId")
                .map(|e| e.text().trim().to_owned())
                .collect();
            if keys.is_empty() {
                required(call, "sessionId")?;
            }
            VimCall::TerminateSession { keys }
        }
        "SessionIsActive" => VimCall::SessionIsActive {
            key: text(call, "sessionID")?,
            user: text(call, "userName")?,
        },
        "AcquireCloneTicket" => VimCall::AcquireCloneTicket,
        "CloneSession" => VimCall::CloneSession {
            ticket: text(call, "cloneTicket")?,
        },
        "ImpersonateUser" => VimCall::ImpersonateUser {
            user: text(call, "userName")?,
            locale: opt_text(call, "locale"),
        },
        "AcquireLocalTicket" => VimCall::AcquireLocalTicket {
            user: text(call, "userName")?,
        },
        "AcquireGenericServiceTicket" => VimCall::AcquireGenericServiceTicket {
            spec: service_spec(required(call, "spec")?)?,
        },
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
            name: text(call, "name")?,
        },
        "CreateFolder" => VimCall::CreateFolder {
            folder: this,
            name: text(call, "name")?,
        },
        other => {
            return Err(Fault::MethodNotFound {
                receiver: this,
                method: other.to_owned(),
            })
        }
    })
}

fn service_spec(spec: El<'_, '_>) -> Result<ServiceRequestSpec, Fault> {
    let ty = spec
        .attr("type")
        .unwrap_or("SessionManagerHttpServiceRequestSpec");
    match ty {
        "SessionManagerHttpServiceRequestSpec" => Ok(ServiceRequestSpec::Http {
            method: opt_text(spec, "method"),
            url: text(spec, "url")?,
        }),
        "SessionManagerVmomiServiceRequestSpec" => Ok(ServiceRequestSpec::Vmomi {
            method: text(spec, "method")?,
        }),
        other => Err(Fault::invalid_argument(
            "spec",
            format!("The service request spec type '{other}' is not supported."),
        )),
    }
}

fn spec_set(call: El<'_, '_>) -> Result<Vec<PropertyFilterSpec>, Fault> {
    let mut out = Vec::new();
    for spec in call.children_named("specSet") {
        let props = spec
            .children_named("propSet")
            .map(|p| {
                Ok(PropertySpec {
                    type_: text(p, "type")?,
                    all: p.child("all").is_some_and(|a| a.text().trim() == "true"),
                    paths: p
                        .children_named("pathSet")
                        .map(|e| e.text().trim().to_owned())
                        .collect(),
                })
            })
            .collect::<Result<Vec<_>, Fault>>()?;
        let objects = spec
            .children_named("objectSet")
            .map(|o| mo_ref(required(o, "obj")?))
            .collect::<Result<Vec<_>, Fault>>()?;
        out.push(PropertyFilterSpec { props, objects });
    }
    if out.is_empty() {
        required(call, "specSet")?;
    }
    Ok(out)
}

// ---- encoding --------------------------------------------------------------------------

const ENVELOPE_START: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenc=\"http://schemas.xmlsoap.org/soap/encoding/\" xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n<soapenv:Body>\n";
const ENVELOPE_END: &str = "\n</soapenv:Body>\n</soapenv:Envelope>";

fn xsi_type(v: &Value) -> &'static str {
    match v {
        Value::Session(_) => "UserSession",
        Value::Sessions(_) => "ArrayOfUserSession",
        Value::Str(_) => "xsd:string",
        Value::Strs(_) => "ArrayOfString",
        Value::Bool(_) => "xsd:boolean",
        Value::Time(_) => "xsd:dateTime",
        Value::Content(_) => "ServiceContent",
        Value::Ref(_) => "ManagedObjectReference",
        Value::Refs(_) => "ArrayOfManagedObjectReference",
        Value::Tags(_) => "ArrayOfTag",
    }
}

fn write_inner(v: &Value, out: &mut String) {
    match v {
        Value::Session(s) => user_session_fields(out, s),
        Value::Sessions(list) => {
            for s in list {
                out.push_str("<UserSession xsi:type=\"UserSession\">");
                user_session_fields(out, s);
                out.push_str("</UserSession>");
            }
        }
        Value::Str(s) => escape_into(out, s),
        Value::Strs(list) => {
            for s in list {
                field(out, "string", s);
            }
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Time(t) => time_into(out, t),
        Value::Content(about) => service_content_fields(out, about),
        Value::Ref(r) => escape_into(out, &r.value),
        Value::Refs(list) => {
            for r in list {
                mo_field(out, "ManagedObjectReference", &r.type_, &r.value);
            }
        }
        Value::Tags(keys) => {
            for k in keys {
                out.push_str("<Tag xsi:type=\"Tag\">");
                field(out, "key", k);
                out.push_str("</Tag>");
            }
        }
    }
}

/// `<tag xsi:type="T">…</tag>` (a MoRef also carries its `type` attribute).
fn write_typed(v: &Value, out: &mut String, tag: &str) {
    out.push('<');
    out.push_str(tag);
    if let Value::Ref(r) = v {
        out.push_str(" type=\"");
        escape_into(out, &r.type_);
        out.push('"');
    }
    out.push_str(" xsi:type=\"");
    out.push_str(xsi_type(v));
    out.push_str("\">");
    write_inner(v, out);
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

/// vim's dateTime: RFC 3339, UTC, microseconds.
pub fn time(t: &DateTime<Utc>) -> String {
    let mut out = String::with_capacity(27);
    time_into(&mut out, t);
    out
}

/// [`time`], appended to `out` without going through `fmt`.
pub fn time_into(out: &mut String, t: &DateTime<Utc>) {
    rfc3339_into(out, t, SecondsFormat::Micros);
}

/// `"00"` to `"99"`, back to back.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// The two decimal digits of `v % 100`.
fn pair(v: u32) -> [u8; 2] {
    let i = (v % 100) as usize * 2;
    [PAIRS[i], PAIRS[i + 1]]
}

/// `t.to_rfc3339_opts(format, true)` for milliseconds or microseconds, appended to `out`
/// without going through `fmt`.
pub(crate) fn rfc3339_into(out: &mut String, t: &DateTime<Utc>, format: SecondsFormat) {
    use chrono::{Datelike, Timelike};
    let utc = t.naive_utc();
    let (year, nanos) = (utc.year(), utc.nanosecond());
    let digits = match format {
        SecondsFormat::Millis => 3,
        SecondsFormat::Micros => 6,
        _ => 0,
    };
    // chrono's own formatting covers what the fixed layout does not: other precisions,
    // years outside 0..=9999 and leap seconds.
    if digits == 0 || !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.push_str(&t.to_rfc3339_opts(format, true));
        return;
    }
    let year = year as u32;
    let secs = utc.num_seconds_from_midnight();
    let (hour, min, sec) = (secs / 3600, secs / 60 % 60, secs % 60);
    let [y0, y1] = pair(year / 100);
    let [y2, y3] = pair(year);
    let [mo0, mo1] = pair(utc.month());
    let [d0, d1] = pair(utc.day());
    let [h0, h1] = pair(hour);
    let [mi0, mi1] = pair(min);
    let [s0, s1] = pair(sec);
    let micros = nanos / 1_000;
    let [f0, f1] = pair(micros / 10_000);
    let [f2, f3] = pair(micros / 100);
    let [f4, f5] = pair(micros);
    let mut buf = [
        y0, y1, y2, y3, b'-', mo0, mo1, b'-', d0, d1, b'T', h0, h1, b':', mi0, mi1, b':', s0, s1,
        b'.', f0, f1, f2, f3, f4, f5, b'Z',
    ];
    // Milliseconds are the first three of the six digits.
    buf[20 + digits] = b'Z';
    out.push_str(std::str::from_utf8(&buf[..21 + digits]).unwrap_or_default());
}

/// A decimal number, appended to `out` without going through `fmt`.
fn push_u64(out: &mut String, v: u64) {
    out.push_str(itoa::Buffer::new().format(v));
}

fn field(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape_into(out, value);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn mo_field(out: &mut String, name: &str, type_: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push_str(" type=\"");
    out.push_str(type_);
    out.push_str("\">");
    escape_into(out, value);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// [`field`] for a literal name: each tag is written as one piece.
macro_rules! field {
    ($out:expr, $name:literal, $value:expr) => {{
        $out.push_str(concat!("<", $name, ">"));
        escape_into($out, $value);
        $out.push_str(concat!("</", $name, ">"));
    }};
}

/// `<name>` + the time + `</name>`, for a literal name.
macro_rules! time_field {
    ($out:expr, $name:literal, $t:expr) => {{
        $out.push_str(concat!("<", $name, ">"));
        time_into($out, $t);
        $out.push_str(concat!("</", $name, ">"));
    }};
}

fn user_session_fields(out: &mut String, s: &UserSession) {
    field!(out, "key", &s.key);
    field!(out, "userName", &s.user_name);
    field!(out, "fullName", &s.full_name);
    time_field!(out, "loginTime", &s.login_time);
    time_field!(out, "lastActiveTime", &s.last_active_time);
    field!(out, "locale", &s.locale);
    field!(out, "messageLocale", &s.message_locale);
    out.push_str(if s.extension_session {
        "<extensionSession>true</extensionSession>"
    } else {
        "<extensionSession>false</extensionSession>"
    });
    field!(out, "ipAddress", &s.ip_address);
    field!(out, "userAgent", &s.user_agent);
    out.push_str("<callCount>");
    push_u64(out, s.call_count);
    out.push_str("</callCount>");
}

/// About how many bytes [`user_session_fields`] writes (escaping aside).
fn user_session_len(s: &UserSession) -> usize {
    320 + s.key.len()
        + s.user_name.len()
        + s.full_name.len()
        + s.locale.len()
        + s.message_locale.len()
        + s.ip_address.len()
        + s.user_agent.len()
}

/// The managed objects a vCenter 8.0.3 ServiceContent names, in its order. vsess serves
/// only ServiceInstance, SessionManager and PropertyCollector; the others are listed so
/// that clients which read ServiceContent find every field they expect.
pub(crate) const CONTENT_BEFORE_ABOUT: &[(&str, &str, &str)] = &[
    ("rootFolder", "Folder", "group-d1"),
    (
        "propertyCollector",
        "PropertyCollector",
        "propertyCollector",
    ),
    ("viewManager", "ViewManager", "ViewManager"),
];
pub(crate) const CONTENT_AFTER_ABOUT: &[(&str, &str, &str)] = &[
    ("setting", "OptionManager", "VpxSettings"),
    ("userDirectory", "UserDirectory", "UserDirectory"),
    ("sessionManager", "SessionManager", "SessionManager"),
    (
        "authorizationManager",
        "AuthorizationManager",
        "AuthorizationManager",
    ),
    ("serviceManager", "ServiceManager", "ServiceMgr"),
    ("perfManager", "PerformanceManager", "PerfMgr"),
    (
        "scheduledTaskManager",
        "ScheduledTaskManager",
        "ScheduledTaskManager",
    ),
    ("alarmManager", "AlarmManager", "AlarmManager"),
    ("eventManager", "EventManager", "EventManager"),
    ("taskManager", "TaskManager", "TaskManager"),
    ("extensionManager", "ExtensionManager", "ExtensionManager"),
    (
        "customizationSpecManager",
        "CustomizationSpecManager",
        "CustomizationSpecManager",
    ),
    (
        "customFieldsManager",
        "CustomFieldsManager",
        "CustomFieldsManager",
    ),
    ("diagnosticManager", "DiagnosticManager", "DiagMgr"),
    ("licenseManager", "LicenseManager", "LicenseManager"),
    ("searchIndex", "SearchIndex", "SearchIndex"),
    ("fileManager", "FileManager", "FileManager"),
    (
        "virtualDiskManager",
        "VirtualDiskManager",
        "virtualDiskManager",
    ),
    ("ovfManager", "OvfManager", "OvfManager"),
    (
        "localizationManager",
        "LocalizationManager",
        "LocalizationManager",
    ),
];

fn service_content_fields(out: &mut String, a: &AboutInfo) {
    for (name, ty, id) in CONTENT_BEFORE_ABOUT {
        mo_field(out, name, ty, id);
    }
    out.push_str("<about>");
    field(out, "name", &a.name);
    field(out, "fullName", &a.full_name);
    field(out, "vendor", &a.vendor);
    field(out, "version", &a.version);
    field(out, "build", &a.build);
    field(out, "localeVersion", "INTL");
    field(out, "localeBuild", "000");
    field(out, "osType", &a.os_type);
    field(out, "productLineId", &a.product_line_id);
    field(out, "apiType", &a.api_type);
    field(out, "apiVersion", &a.api_version);
    field(out, "instanceUuid", &a.instance_uuid);
    field(out, "licenseProductName", &a.license_product_name);
    field(out, "licenseProductVersion", &a.license_product_version);
    out.push_str("</about>");
    for (name, ty, id) in CONTENT_AFTER_ABOUT {
        mo_field(out, name, ty, id);
    }
}

fn response(method: &str, inner: impl FnOnce(&mut String)) -> String {
    response_sized(method, 512, inner)
}

/// [`response`] with room for about `payload` bytes of content, so that it is written
/// into one allocation.
fn response_sized(method: &str, payload: usize, inner: impl FnOnce(&mut String)) -> String {
    let mut out = String::with_capacity(
        ENVELOPE_START.len() + ENVELOPE_END.len() + 2 * method.len() + 48 + payload,
    );
    out.push_str(ENVELOPE_START);
    out.push('<');
    out.push_str(method);
    out.push_str("Response xmlns=\"urn:vim25\">");
    inner(&mut out);
    out.push_str("</");
    out.push_str(method);
    out.push_str("Response>");
    out.push_str(ENVELOPE_END);
    out
}

/// A response with no return value (`<LogoutResponse xmlns="urn:vim25"></LogoutResponse>`).
pub fn empty(method: &str) -> String {
    response(method, |_| {})
}

/// `RetrieveServiceContent`.
pub fn service_content(about: &AboutInfo) -> String {
    response_sized("RetrieveServiceContent", 2560, |o| {
        o.push_str("<returnval>");
        service_content_fields(o, about);
        o.push_str("</returnval>");
    })
}

/// Login, CloneSession, ImpersonateUser.
pub fn user_session(method: &str, s: &UserSession) -> String {
    response_sized(method, 32 + user_session_len(s), |o| {
        o.push_str("<returnval>");
        user_session_fields(o, s);
        o.push_str("</returnval>");
    })
}

pub fn local_ticket(t: &LocalTicket) -> String {
    response("AcquireLocalTicket", |o| {
        o.push_str("<returnval>");
        field(o, "userName", &t.user_name);
        field(o, "passwordFilePath", &t.password_file_path);
        o.push_str("</returnval>");
    })
}

pub fn generic_service_ticket(t: &GenericServiceTicket) -> String {
    response("AcquireGenericServiceTicket", |o| {
        o.push_str("<returnval>");
        field(o, "id", &t.id);
        if let Some(h) = &t.host_name {
            field(o, "hostName", h);
        }
        if let Some(tp) = &t.ssl_thumbprint {
            field(o, "sslThumbprint", tp);
        }
        o.push_str("</returnval>");
    })
}

/// `Fetch`: the value, or an empty response for an unset one.
pub fn fetch(value: Option<&Value>) -> String {
    let payload = match value {
        Some(Value::Session(s)) => 64 + user_session_len(s),
        _ => 512,
    };
    response_sized("Fetch", payload, |o| {
        if let Some(v) = value {
            write_typed(v, o, "returnval");
        }
    })
}

fn object_contents(o: &mut String, tag: &str, objects: &[ObjectContent]) {
    for oc in objects {
        o.push('<');
        o.push_str(tag);
        o.push('>');
        mo_field(o, "obj", &oc.obj.type_, &oc.obj.value);
        for (name, v) in &oc.props {
            o.push_str("<propSet>");
            field(o, "name", name);
            write_typed(v, o, "val");
            o.push_str("</propSet>");
        }
        o.push_str("</");
        o.push_str(tag);
        o.push('>');
    }
}

pub fn retrieve_properties(objects: &[ObjectContent]) -> String {
    response("RetrieveProperties", |o| {
        object_contents(o, "returnval", objects)
    })
}

/// `RetrievePropertiesEx`: a `RetrieveResult`, or nothing when no object matched.
pub fn retrieve_properties_ex(objects: &[ObjectContent]) -> String {
    response("RetrievePropertiesEx", |o| {
        if !objects.is_empty() {
            o.push_str("<returnval>");
            object_contents(o, "objects", objects);
            o.push_str("</returnval>");
        }
    })
}

/// Encodes a call's outcome as the SOAP response for `method`.
pub fn outcome(method: &str, o: &Outcome) -> String {
    match o {
        Outcome::Empty => empty(method),
        Outcome::Value(v) if method == "Fetch" => fetch(v.as_ref()),
        Outcome::Value(Some(Value::Content(about))) => service_content(about),
        Outcome::Value(Some(Value::Ref(r))) => {
            response(method, |out| mo_field(out, "returnval", &r.type_, &r.value))
        }
        Outcome::Value(Some(v)) => response(method, |out| {
            out.push_str("<returnval>");
            write_inner(v, out);
            out.push_str("</returnval>");
        }),
        Outcome::Value(None) => empty(method),
        Outcome::NewSession(_, s) | Outcome::Session(s) => user_session(method, s),
        Outcome::Objects { ex: false, objects } => retrieve_properties(objects),
        Outcome::Objects { ex: true, objects } => retrieve_properties_ex(objects),
        Outcome::LocalTicket(t) => local_ticket(t),
        Outcome::ServiceTicket(t) => generic_service_ticket(t),
    }
}

/// The one place a [`Fault`] becomes a SOAP fault (sent with HTTP 500): an unqualified
/// `detail` whose child is `<XxxFault xsi:type="Xxx">`, the shape pyVmomi parses.
pub fn fault(f: &Fault) -> String {
    let ty = f.type_name();
    let mut out = String::with_capacity(768);
    out.push_str(ENVELOPE_START);
    out.push_str("<soapenv:Fault><faultcode>ServerFaultCode</faultcode>");
    field(&mut out, "faultstring", &f.to_string());
    out.push_str(&format!(
        "<detail><{ty}Fault xmlns=\"urn:vim25\" xsi:type=\"{ty}\">"
    ));
    match f {
        Fault::NoPermission { object, privilege }
        | Fault::NotAuthenticated { object, privilege } => {
            mo_field(&mut out, "object", &object.type_, &object.value);
            field(&mut out, "privilegeId", privilege.id());
        }
        Fault::InvalidArgument {
            property: Some(p), ..
        } => field(&mut out, "invalidProperty", p),
        Fault::MethodNotFound { receiver, method } => {
            mo_field(&mut out, "receiver", &receiver.type_, &receiver.value);
            field(&mut out, "method", method);
        }
        Fault::ManagedObjectNotFound(obj) => mo_field(&mut out, "obj", &obj.type_, &obj.value),
        Fault::InvalidProperty(name) => field(&mut out, "name", name),
        Fault::DuplicateName { name, parent } => {
            field(&mut out, "name", name);
            mo_field(&mut out, "object", &parent.type_, &parent.value);
        }
        Fault::InvalidName { name } => field(&mut out, "name", name),
        Fault::SessionLimit { .. } | Fault::SystemError(_) | Fault::Unavailable(_) => {
            field(&mut out, "reason", &f.to_string())
        }
        _ => {}
    }
    out.push_str(&format!("</{ty}Fault></detail></soapenv:Fault>"));
    out.push_str(ENVELOPE_END);
    out
}

/// Finds the `vmware_soap_session` cookie value in a `Cookie` header, tolerating what
/// pyVmomi sends back: quotes, and the whole `Set-Cookie` value with its attributes.
///
/// Besides `;`, a `,` separates cookies here: pyVmomi sends back the `Set-Cookie` header
/// as `http.client` joined it, so with a proxy's cookie before ours it is
/// `LB=x; Path=/, vmware_soap_session="…"; Path=/; …`.
pub fn session_cookie(header: &str) -> Option<&str> {
    find_cookie(header, "vmware_soap_session", true)
}

/// Finds a cookie's value in a `Cookie` header; quoted values are unquoted.
///
/// The header is split at `;` and a pair's name must equal `name` whole: a name found
/// anywhere else (inside another cookie's name or value, as in
/// `xvmware_soap_session=vmware_soap_session=ID` or `a=b __Host-vsess-ui=T`) is not that
/// cookie, so a cookie an attacker could plant under another name never stands in for it.
/// The first such pair decides. Its value ends at a `,` or space (pyVmomi sends back the
/// whole `Set-Cookie` value, attributes and all).
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    find_cookie(header, name, false)
}

/// [`cookie`], with pairs separated by `;`, and also by `,` if `comma_separates`.
///
/// It scans bytes (with `memchr`), not `char`s: every byte it looks for is ASCII, so each
/// place it cuts the header is a character boundary. A pair is scanned to its end only
/// when it is not the one sought; the one sought is scanned once, to the end of its value.
fn find_cookie<'a>(header: &'a str, name: &str, comma_separates: bool) -> Option<&'a str> {
    // Without a second separator, `;` stands in for it.
    let sep2 = if comma_separates { b',' } else { b';' };
    // A name holding a separator could only match across two pairs.
    if name.is_empty() || name.bytes().any(|b| b == b';' || b == sep2) {
        return None;
    }
    let bytes = header.as_bytes();
    let mut start = 0;
    loop {
        let rest = bytes.get(start..)?;
        let blanks = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let value = rest
            .get(blanks..)
            .and_then(|p| p.strip_prefix(name.as_bytes()))
            .and_then(|p| p.strip_prefix(b"="));
        if let Some(value) = value {
            // The value ends where its pair does, or before: at a closing quote, or
            // unquoted at a `,` or space (pyVmomi sends back the cookie's attributes).
            // `value` is a suffix of `bytes`, so its length gives its place.
            let (from, len) = match value.strip_prefix(b"\"") {
                Some(quoted) => (
                    bytes.len() - quoted.len(),
                    memchr::memchr3(b'"', b';', sep2, quoted).unwrap_or(quoted.len()),
                ),
                None => (
                    bytes.len() - value.len(),
                    memchr::memchr3(b',', b' ', b';', value).unwrap_or(value.len()),
                ),
            };
            // Cut from the `str` between ASCII bytes, so no UTF-8 check is needed.
            return header.get(from..from + len).filter(|v| !v.is_empty());
        }
        start += memchr::memchr2(b';', sep2, rest)? + 1;
    }
}

/// The `Set-Cookie` value for a new session, exactly as vCenter 8 sends it over HTTPS.
/// Over plain HTTP (`vsess serve --http`) it leaves out `Secure`, which would make
/// clients (Go's cookie jar: govc) drop the cookie and log in on every call.
pub fn set_cookie(id: &str, secure: bool) -> String {
    if secure {
        format!("vmware_soap_session=\"{id}\"; Path=/; HttpOnly; Secure;")
    } else {
        format!("vmware_soap_session=\"{id}\"; Path=/; HttpOnly;")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml;
    use chrono::Timelike;

    fn env(inner: &str) -> Vec<u8> {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>").into_bytes()
    }

    #[test]
    fn decodes_pyvmomi_login_ignoring_version_ids() {
        let c = decode(&env(r#"<Login xmlns="urn:vim25"><_this versionId="8.0.3.0" type="SessionManager">SessionManager</_this><userName versionId="8.0.3.0">u</userName><password versionId="8.0.3.0">p&amp;w</password></Login>"#)).unwrap();
        assert_eq!(
            c,
            VimCall::Login {
                user: "u".into(),
                password: "p&w".into(),
                locale: None
            }
        );
    }

    #[test]
    fn decodes_terminate_session_keys_in_order() {
        let c = decode(&env(r#"<TerminateSession xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><sessionId>a</sessionId><sessionId>b</sessionId></TerminateSession>"#)).unwrap();
        assert_eq!(
            c,
            VimCall::TerminateSession {
                keys: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn decodes_govc_retrieve_properties() {
        let c = decode(&env(r#"<RetrieveProperties xmlns="urn:vim25"><_this type="PropertyCollector">propertyCollector</_this><specSet><propSet><type>SessionManager</type><pathSet>currentSession</pathSet><pathSet>sessionList</pathSet></propSet><objectSet><obj type="SessionManager">SessionManager</obj></objectSet></specSet></RetrieveProperties>"#)).unwrap();
        let VimCall::RetrieveProperties { specs } = c else {
            panic!()
        };
        assert_eq!(specs[0].props[0].paths, ["currentSession", "sessionList"]);
        assert_eq!(specs[0].objects[0], MoRef::session_manager());
    }

    #[test]
    fn bad_requests_get_the_right_faults() {
        let unknown = decode(&env(
            r#"<Frobnicate><_this type="SessionManager">SessionManager</_this></Frobnicate>"#,
        ))
        .unwrap_err();
        assert!(matches!(unknown, Fault::MethodNotFound { .. }));
        let wrong_this = decode(&env(r#"<Login><_this type="SessionManager">Nope</_this><userName>u</userName><password>p</password></Login>"#)).unwrap_err();
        assert!(matches!(wrong_this, Fault::ManagedObjectNotFound(_)));
        let wrong_type = decode(&env(r#"<Login><_this type="Datastore">ds-1</_this><userName>u</userName><password>p</password></Login>"#)).unwrap_err();
        assert!(matches!(wrong_type, Fault::ManagedObjectNotFound(_)));
        let missing = decode(&env(r#"<Login><_this type="SessionManager">SessionManager</_this><userName>u</userName></Login>"#)).unwrap_err();
        assert!(matches!(&missing, Fault::InvalidRequest(m) if m.contains("password")));
        assert!(matches!(
            decode(b"<nope").unwrap_err(),
            Fault::InvalidRequest(_)
        ));
        assert!(matches!(
            decode(b"\xff\xfe").unwrap_err(),
            Fault::InvalidRequest(_)
        ));
    }

    #[test]
    fn faults_have_the_shape_pyvmomi_parses() {
        let f = fault(&Fault::not_authenticated(vsess_core::Privilege::SystemView));
        assert!(f.contains("<detail><NotAuthenticatedFault xmlns=\"urn:vim25\" xsi:type=\"NotAuthenticated\"><object type=\"SessionManager\">SessionManager</object><privilegeId>System.View</privilegeId></NotAuthenticatedFault></detail>"));
        assert!(f.contains("<faultcode>ServerFaultCode</faultcode>"));
        let parsed = xml::parse(f.as_bytes()).unwrap();
        assert_eq!(parsed.name, "Envelope");
    }

    #[test]
    fn cookie_parsing_tolerates_what_clients_send() {
        assert_eq!(
            session_cookie("vmware_soap_session=\"abc\"; Path=/; HttpOnly; Secure;"),
            Some("abc")
        );
        assert_eq!(session_cookie("vmware_soap_session=abc"), Some("abc"));
        assert_eq!(
            session_cookie("a=b; vmware_soap_session=abc; c=d"),
            Some("abc")
        );
        assert_eq!(session_cookie("x_vmware_soap_session=abc"), None);
        assert_eq!(session_cookie(""), None);
        assert_eq!(session_cookie("vmware_soap_session=\"\""), None);
    }

    /// The byte scanner finds what the `char` splitter it replaced found, on headers built
    /// from the pieces that matter: names, separators, quotes, blanks, non-ASCII.
    #[test]
    fn cookie_scan_agrees_with_the_char_splitter() {
        fn by_chars<'a>(header: &'a str, name: &str, separators: &[char]) -> Option<&'a str> {
            if name.is_empty() {
                return None;
            }
            let pair = header.split(separators).find_map(|pair| {
                pair.trim_start_matches([' ', '\t'])
                    .strip_prefix(name)?
                    .strip_prefix('=')
            })?;
            let value = match pair.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next(),
                None => pair.split([',', ' ']).next(),
            };
            value.filter(|v| !v.is_empty())
        }
        const PIECES: &[&str] = &[
            "vmware_soap_session",
            "vmware_soap_session=",
            "vmware_soap_session=\"",
            "__Host-vsess-ui=",
            "=",
            "\"",
            ";",
            ",",
            " ",
            "\t",
            "a",
            "é",
            "Path=/",
            "abc123",
            "x",
            "; ",
            "\"\"",
            "ü=",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut found = 0;
        for _ in 0..20_000 {
            let len = next(10);
            let header: String = (0..len).map(|_| PIECES[next(PIECES.len())]).collect();
            let want = by_chars(&header, "vmware_soap_session", &[';', ',']);
            assert_eq!(session_cookie(&header), want, "{header:?}");
            found += usize::from(want.is_some());
            for name in ["__Host-vsess-ui", "a", "é", "", "a;b"] {
                assert_eq!(
                    cookie(&header, name),
                    by_chars(&header, name, &[';']),
                    "{name} in {header:?}"
                );
            }
        }
        assert!(found > 2_000, "only {found} headers held the cookie");
    }

    /// A cookie's name is compared whole: one found inside another cookie's name or
    /// value is not it (the security audit's `__Host-` bypass).
    #[test]
    fn cookie_names_match_whole_pairs_only() {
        let id = "0123456789abcdef";
        for (header, want) in [
            (
                format!("xvmware_soap_session=vmware_soap_session={id}"),
                None,
            ),
            (format!("a=b vmware_soap_session={id}"), None),
            (format!("a=\"vmware_soap_session={id}\""), None),
            (format!("a=b;vmware_soap_session={id}"), Some(id)),
            (format!("a=b;\tvmware_soap_session={id}"), Some(id)),
            (
                format!("vmware_soap_session={id}; vmware_soap_session=other"),
                Some(id),
            ),
            (format!("vmware_soap_session ={id}"), None),
            (format!("vmware_soap_sessionx={id}"), None),
        ] {
            assert_eq!(session_cookie(&header), want, "{header}");
        }
        assert_eq!(
            cookie(
                "x__Host-vsess-ui=__Host-vsess-ui=attacker; __Host-vsess-ui=victim",
                "__Host-vsess-ui"
            ),
            Some("victim")
        );
        assert_eq!(cookie("a=b", ""), None);
        assert_eq!(cookie("é=1; v=2", "v"), Some("2"));
        // pyVmomi echoing two Set-Cookie headers joined by http.client.
        assert_eq!(
            session_cookie(&format!(
                "LB=x; Path=/, vmware_soap_session=\"{id}\"; Path=/; HttpOnly; Secure;"
            )),
            Some(id)
        );
        // Other cookies (the web page's) are split at `;` only: a value with a comma
        // (browsers allow one) cannot hold a pair.
        assert_eq!(
            cookie("x=a,__Host-vsess-ui=evil; y=1", "__Host-vsess-ui"),
            None
        );
    }

    #[test]
    fn times_and_numbers_format_like_chrono_and_to_string() {
        use chrono::TimeZone;
        let times = [
            Utc.with_ymd_and_hms(2026, 11, 22, 4, 33, 28).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(5, 6, 7, 8, 9, 10).unwrap(),
        ];
        for t in times {
            for ns in [
                0,
                1,
                999,
                1_000,
                9_999,
                99_999,
                100_000,
                999_999,
                1_000_000,
                570_262_123,
                999_999_999,
                1_500_000_000,
            ] {
                let Some(t) = t.with_nanosecond(ns) else {
                    continue;
                };
                assert_eq!(time(&t), t.to_rfc3339_opts(SecondsFormat::Micros, true));
                for f in [SecondsFormat::Millis, SecondsFormat::Secs] {
                    let mut s = String::new();
                    rfc3339_into(&mut s, &t, f);
                    assert_eq!(s, t.to_rfc3339_opts(f, true));
                }
            }
        }
        for n in [0u64, 7, 10, 99, 12345, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    /// The `UserSession` encoder before the `field!` macro and the digit-table times,
    /// kept as the reference: tags pushed piece by piece, times and numbers through chrono
    /// and `fmt`.
    fn old_user_session_fields(out: &mut String, s: &UserSession) {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
        field(out, "key", &s.key);
        field(out, "userName", &s.user_name);
        field(out, "fullName", &s.full_name);
        field(out, "loginTime", &time(&s.login_time));
        field(out, "lastActiveTime", &time(&s.last_active_time));
        field(out, "locale", &s.locale);
        field(out, "messageLocale", &s.message_locale);
        field(
            out,
            "extensionSession",
            if s.extension_session { "true" } else { "false" },
        );
        field(out, "ipAddress", &s.ip_address);
        field(out, "userAgent", &s.user_agent);
        field(out, "callCount", &s.call_count.to_string());
    }

    #[test]
    fn user_session_encoding_is_byte_identical_to_the_reference() {
        use chrono::TimeZone;
        let base = UserSession {
            key: "525d7d8c-c06a-4940-8d7d-5138fe4d6683".into(),
            user_name: "administrator@vsphere.local".into(),
            full_name: "administrator@vsphere.local".into(),
            login_time: Utc.with_ymd_and_hms(2026, 11, 22, 4, 33, 28).unwrap(),
            last_active_time: Utc.with_ymd_and_hms(2026, 11, 22, 4, 33, 28).unwrap(),
            locale: "en".into(),
            message_locale: "en".into(),
            extension_session: false,
            ip_address: "127.0.0.1".into(),
            user_agent: "pyvmomi 9.1.1.0 OSS Python/3.11.7 (Linux; 6.18.44-fc-v669; x86_64)".into(),
            call_count: 2,
        };
        let odd = UserSession {
            key: "k<&>\"'".into(),
            user_name: "DOMAIN\\usér".into(),
            full_name: "a\u{1}b\tc\nd\re\u{1f}f & <g> \"h\" 'i' 😀".into(),
            login_time: Utc
                .with_ymd_and_hms(1999, 2, 28, 23, 59, 59)
                .unwrap()
                .with_nanosecond(999_999_999)
                .unwrap(),
            last_active_time: Utc
                .with_ymd_and_hms(10000, 1, 1, 0, 0, 0)
                .unwrap()
                .with_nanosecond(1_500_000_000)
                .unwrap(),
            locale: String::new(),
            message_locale: "de_DE".into(),
            extension_session: true,
            ip_address: "::1".into(),
            user_agent: "x".repeat(17) + "<" + &"y".repeat(9) + "&",
            call_count: u64::MAX,
        };
        for s in [base, odd] {
            let (mut new, mut old) = (String::new(), String::new());
            user_session_fields(&mut new, &s);
            old_user_session_fields(&mut old, &s);
            assert_eq!(new, old);
            let value = Value::Session(s.clone());
            let mut typed_old = String::new();
            old_user_session_fields(&mut typed_old, &s);
            let whole = fetch(Some(&value));
            assert!(whole.contains(&format!(
                "<FetchResponse xmlns=\"urn:vim25\"><returnval xsi:type=\"UserSession\">{typed_old}</returnval></FetchResponse>"
            )));
            assert_eq!(
                user_session("Login", &s),
                format!("{ENVELOPE_START}<LoginResponse xmlns=\"urn:vim25\"><returnval>{typed_old}</returnval></LoginResponse>{ENVELOPE_END}")
            );
        }
    }

    #[test]
    fn service_versions_name_the_newest_first() {
        let v = vim_service_versions();
        assert!(v.contains("<namespaces version=\"1.0\">"));
        assert!(v.contains("<version>8.0.3.0</version>\n  <priorVersions>"));
        xml::parse(v.as_bytes()).unwrap();
    }
}
