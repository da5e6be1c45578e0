//! Protocol-neutral property values and property-collector shapes. Each wire codec
//! encodes these in its own way (SOAP `xsi:type`, VI/JSON `_typeName`).
use crate::fault::MoRef;
use crate::service::AboutInfo;
use crate::session::UserSession;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Session(UserSession),
    Sessions(Vec<UserSession>),
    Str(String),
    Strs(Vec<String>),
    Bool(bool),
    Time(DateTime<Utc>),
    Content(Box<AboutInfo>),
    Ref(MoRef),
    Refs(Vec<MoRef>),
    /// `Tag[]`: tag keys.
    Tags(Vec<String>),
}

/// One `PropertySpec` of a PropertyCollector request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertySpec {
    pub type_: String,
    pub all: bool,
    pub paths: Vec<String>,
}

/// One `PropertyFilterSpec`: which properties of which objects (no traversal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyFilterSpec {
    pub props: Vec<PropertySpec>,
    pub objects: Vec<MoRef>,
}

/// One object's properties, as `ObjectContent`.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectContent {
    pub obj: MoRef,
    pub props: Vec<(String, Value)>,
}
