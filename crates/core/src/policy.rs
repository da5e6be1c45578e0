//! Session policies, named after vCenter's own settings.
use chrono::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock an account; 0 disables lockout.
    pub max_failures: u32,
    pub lock_duration: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `config.vmacore.soap.sessionTimeout`: idle time after which a session ends.
    pub idle_timeout: Duration,
    /// `vpx.sso.sts.tokenLifetime`: maximum session age; `None` for no limit.
    pub max_lifetime: Option<Duration>,
    /// `config.vmacore.soap.maxSessionCount`.
    pub max_sessions: usize,
    pub lockout: LockoutPolicy,
    pub supported_locales: Vec<String>,
    pub default_locale: String,
    pub clone_ticket_ttl: Duration,
    pub local_ticket_ttl: Duration,
    pub service_ticket_ttl: Duration,
    /// How long a verified password is remembered (see `credcache`); zero disables.
    pub credential_cache_ttl: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::seconds(1800),
            max_lifetime: Some(Duration::seconds(86_400)),
            max_sessions: 3000,
            lockout: LockoutPolicy {
                max_failures: 5,
                lock_duration: Duration::seconds(300),
            },
            supported_locales: default_locales(),
            default_locale: "en".to_owned(),
            clone_ticket_ttl: Duration::seconds(600),
            local_ticket_ttl: Duration::seconds(300),
            service_ticket_ttl: Duration::seconds(300),
            credential_cache_ttl: Duration::seconds(300),
        }
    }
}

pub fn default_locales() -> Vec<String> {
    ["en", "de", "fr", "es", "it", "ja", "ko", "zh_CN", "zh_TW"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl Policy {
    /// A locale is supported when it is listed, or when its language part is (`en_US` → `en`).
    pub fn locale_supported(&self, locale: &str) -> bool {
        let lang = locale.split(['_', '-']).next().unwrap_or(locale);
        self.supported_locales
            .iter()
            .any(|l| l.eq_ignore_ascii_case(locale) || l.eq_ignore_ascii_case(lang))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_match_on_language() {
        let p = Policy::default();
        assert!(p.locale_supported("en"));
        assert!(p.locale_supported("en_US"));
        assert!(p.locale_supported("zh_CN"));
        assert!(!p.locale_supported("xx_YY"));
        assert!(!p.locale_supported("bogus"));
    }
}
