//! The OpenStack client against a REAL Keystone (keystone 30.0.0 from PyPI on 127.0.0.1).
//!
//! `scripts/peers/keystone.sh` starts two instances and prints the path of an env file;
//! the runner exports it and points these variables at the files:
//!
//! - `VSESS_KEYSTONE_ENV`: the main instance (seeded: RegionTwo, compute and object-store
//!   endpoints, the demo user, 25+ projects). The runner also exports its `OS_*` variables
//!   into the environment for the `from_env` test (`set -a; . "$VSESS_KEYSTONE_ENV"`).
//! - `VSESS_KEYSTONE_SHORT_ENV`: the short-token instance (tokens live about 10 s); if
//!   unset, the path named in the main env file.
//!
//! Every test is ignored by default and FAILS (does not skip) when the variables are missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::Utc;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use vsess_client::openstack::identity::v3::{catalog, projects, tokens, users};
use vsess_client::openstack::{
    self, authenticated_client_with, identity_v3, service_client, AuthOptions, Availability,
    EndpointOpts, ProviderClient, ProviderConfig,
};
use vsess_client::Error;

/// Serialises the tests that make Keystone write (revocations, failed logins): its sqlite
/// database has one writer, and concurrent writes can end in "database is locked" (HTTP 500).
static WRITERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Parses `export KEY='value'` lines (sh single quoting, `'\''` for a quote) and bare
/// `KEY=value` lines.
fn parse_env(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, raw)) = line.split_once('=') else {
            continue;
        };
        let mut value = String::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    for q in chars.by_ref() {
                        if q == '\'' {
                            break;
                        }
                        value.push(q);
                    }
                }
                '\\' => {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                }
                c => value.push(c),
            }
        }
        out.insert(k.trim().to_owned(), value);
    }
    out
}

fn read_env_file(var: &str, path: &str) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{var}={path}: cannot read the Keystone env file: {e}"));
    let env = parse_env(&text);
    assert!(
        env.contains_key("OS_AUTH_URL"),
        "{var}={path} has no OS_AUTH_URL: not a file written by scripts/peers/keystone.sh"
    );
    env
}

/// The main instance's env file.
fn main_env() -> HashMap<String, String> {
    let path = std::env::var("VSESS_KEYSTONE_ENV").unwrap_or_else(|_| {
        panic!(
            "VSESS_KEYSTONE_ENV is not set. These tests need a real Keystone: run \
             `export VSESS_KEYSTONE_ENV=$(scripts/peers/keystone.sh | tail -n 1)` \
             (scripts/test does this), or run scripts/test."
        )
    });
    read_env_file("VSESS_KEYSTONE_ENV", &path)
}

/// The short-token instance's env file.
fn short_env() -> HashMap<String, String> {
    let path = std::env::var("VSESS_KEYSTONE_SHORT_ENV")
        .ok()
        .or_else(|| main_env().get("VSESS_KEYSTONE_SHORT_ENV").cloned())
        .unwrap_or_else(|| {
            panic!(
                "VSESS_KEYSTONE_SHORT_ENV is not set and the main env file does not name it: \
                 start the Keystones with scripts/peers/keystone.sh"
            )
        });
    read_env_file("VSESS_KEYSTONE_SHORT_ENV", &path)
}

fn get<'a>(env: &'a HashMap<String, String>, k: &str) -> &'a str {
    env.get(k)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("the Keystone env file has no {k}"))
}

fn opts(env: &HashMap<String, String>) -> AuthOptions {
    AuthOptions::from_lookup(|k| env.get(k).cloned()).unwrap()
}

fn config(margin: Option<Duration>) -> ProviderConfig {
    let _ = rustls::crypto::ring::default_provider().install_default();
    ProviderConfig {
        expiry_margin: margin,
        // Loopback only: never through a proxy from the environment.
        http_client: Some(
            reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        ),
        ..ProviderConfig::default()
    }
}

async fn login(env: &HashMap<String, String>, allow_reauth: bool) -> ProviderClient {
    let mut o = opts(env);
    o.allow_reauth = allow_reauth;
    authenticated_client_with(o, config(Some(Duration::from_secs(30))))
        .await
        .unwrap_or_else(|e| panic!("cannot authenticate at {}: {e}", get(env, "OS_AUTH_URL")))
}

/// Waits until Keystone refuses a revoked `token` as `X-Auth-Token` for a while (plain HTTP,
/// no re-authentication). keystone 30 with its in-process cache (start.sh's default) still
/// accepts a just-revoked token on some calls (about one, within the first few hundred ms),
/// while validation (`GET /v3/auth/tokens`) says 404 at once; see scripts/peers/keystone/README.md.
async fn wait_until_refused(env: &HashMap<String, String>, token: &str) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/projects?limit=1", get(env, "OS_AUTH_URL"));
    let start = std::time::Instant::now();
    let mut refused_since: Option<std::time::Instant> = None;
    while start.elapsed() < Duration::from_secs(10) {
        let status = http
            .get(&url)
            .header("X-Auth-Token", token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 401 {
            let since = *refused_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= Duration::from_millis(600) {
                return;
            }
        } else {
            refused_since = None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Keystone still accepts the revoked token after 10 s");
}

fn region(r: &str) -> EndpointOpts {
    EndpointOpts::region(r)
}

#[tokio::test]
#[ignore = "needs a real Keystone: scripts/test starts one"]
async fn password_auth_gives_a_project_scoped_token_and_catalog() {
    let env = main_env();
    let provider = login(&env, false).await;
    let token = provider.token().unwrap();
    assert_eq!(token.user.name, "admin");
    assert_eq!(token.methods, vec!["password"]);
    let project = token.project.clone().expect("a project-scoped token");
    assert_eq!(project.id, get(&env, "OS_PROJECT_ID"));
    assert_eq!(project.name, get(&env, "VSESS_KEYSTONE_PROJECT_NAME"));
    assert!(token.roles.iter().any(|r| r.name == "admin"));
    assert!(token.expires_at > Utc::now() + chrono::Duration::minutes(50));
    assert!(token.id.starts_with("gAAAAA"), "a fernet token");
    assert_eq!(provider.token_issue_count(), 1);
    let types: HashSet<String> = provider
        .catalog()
        .entries
        .iter()
        .map(|e| e.service_type.clone())
        .collect();
    for t in ["identity", "compute", "object-store"] {
        assert!(types.contains(t), "catalog lacks {t}: {types:?}");
    }
    // Neither the provider's nor the token's Debug output shows the token.
    assert!(!format!("{provider:?}").contains(&token.id));
    assert!(!format!("{token:?}").contains(&token.id));
}

#[tokio::test]
#[ignore = "needs a real Keystone: scripts/test starts one"]
async fn project_name_scope_and_user_id_auth() {
    let env = main_env();
    let admin = login(&env, false).await;
    let user_id = admin.token().unwrap().user.id;
    // By project name in the user's domain (wire/keystone/03).
    let mut o = opts(&env);
    o.project_id = None;
    o.project_name = Some(get(&env, "VSESS_KEYSTONE_PROJECT_NAME").to_owned());
    let p = authenticated_client_with(o, config(Some(Duration::from_secs(30))))
        .await
        .unwrap();
    assert_eq!(
        p.token().unwrap().project.unwrap().id,
        get(&env, "OS_PROJECT_ID")
    );
    // By user id and project id (wire/keystone/04).
    let o = AuthOptions {
        identity_endpoint: get(&env, "OS_AUTH_URL").to_owned(),
        user_id: Some(user_id.clone()),
        password: Some(get(&env, "OS_PASSWORD").to_owned()),
        project_id: Some(get(&env, "OS_PROJECT_ID").to_owned()),
        ..AuthOptions::default()
    };
    let p = authenticated_client_with(o, config(Some(Duration::from_secs(30))))
        .await
        .unwrap();
    assert_eq!(p.token().unwrap().user.id, user_id);
    // The demo member, scoped to the demo project.
    let o = AuthOptions {
        identity_endpoint: get(&env, "OS_AUTH_URL").to_owned(),
        username: Some(get(&env, "VSESS_KEYSTONE_DEMO_USERNAME").to_owned()),
        password: Some(get(&env, "VSESS_KEYSTONE_DEMO_PASSWORD").to_owned()),
        domain_id: Some("default".into()),
        project_id: Some(get(&env, "VSESS_KEYSTONE_DEMO_PROJECT_ID").to_owned()),
        ..AuthOptions::default()
    };
    let demo = authenticated_client_with(o, config(Some(Duration::from_secs(30))))
        .await
        .unwrap();
    let t = demo.token().unwrap();
    assert_eq!(t.user.id, get(&env, "VSESS_KEYSTONE_DEMO_USER_ID"));
    assert!(t.roles.iter().any(|r| r.name == "member"));
    // A member may not list users: 403 is an Http error, not an authentication error.
    let identity = identity_v3(&demo, &region("RegionOne")).unwrap();
    match users::list(&identity, &users::ListOpts::default())
        .unwrap()
        .all_pages()
        .await
    {
        Err(Error::Http { status: 403, .. }) => {}
        other => panic!("expected 403, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs a real Keystone: scripts/test starts one"]
async fn token_auth_rescopes_an_existing_token() {
    let env = main_env();
    let first = login(&env, false).await;
    let first_token = first.token().unwrap();
    let o = AuthOptions {
        identity_endpoint: get(&env, "OS_AUTH_URL").to_owned(),
        token_id: Some(first_token.id.clone()),
        project_id: Some(get(&env, "OS_PROJECT_ID").to_owned()),
        ..AuthOptions::default()
    };
    let second = authenticated_client_with(o, config(Some(Duration::from_secs(30))))
        .await
        .unwrap();
    let t = second.token().unwrap();
    // Keystone lists the methods of the whole chain, in no fixed order.
    let methods: HashSet<&str> = t.methods.iter().map(String::as_str).collect();
    assert_eq!(methods, HashSet::from(["token", "password"]));
    assert_eq!(t.user.id, first_token.user.id);
    assert_ne!(t.id, first_token.id);
    // A rescoped token keeps the original's expiry.
    assert_eq!(t.expires_at, first_token.expires_at);
    let identity = identity_v3(&second, &EndpointOpts::default()).unwrap();
    projects::get(&identity, get(&env, "OS_PROJECT_ID"))
        .await
        .unwrap()
        .extract()
        .unwrap();
}

#[tokio::test]
#[ignore = "needs a real Keystone: scripts/test starts one"]
async fn from_env_reads_the_exported_os_variables() {
    let env = main_env();
    let exported = std::env::var("OS_AUTH_URL").unwrap_or_else(|_| {
        panic!(
            "OS_AUTH_URL is not exported: the runner must export the env file's variables \
             (`set -a; . \"$VSESS_KEYSTONE_ENV\"; set +a`) for this test"
        )
    });
    assert_eq!(exported, get(&env, "OS_AUTH_URL"));
    let mut o = AuthOptions::from_env().unwrap();
    assert_eq!(o.identity_endpoint, get(&env, "OS_AUTH_URL"));
    assert_eq!(o.username.as_deref(), Some(get(&env, "OS_USERNAME")));
    assert_eq!(o.project_id.as_deref(), Some(get(&env, "OS_PROJECT_ID")));
    assert_eq!(o.domain_id.as_deref(), Some(get(&env, "OS_DOMAIN_ID")));
    o.allow_reauth = true;
    let provider = authenticated_client_with(o, config(Some(Duration::from_secs(30))))
        .await
        .unwrap();
    assert_eq!(
        provider.token().unwrap().project.unwrap().id,
        get(&env, "OS_PROJECT_ID")
    );
    // And the endpoint options from OS_REGION_NAME.
    let eo = EndpointOpts::from_env().unwrap();
    assert_eq!(eo.region.as_deref(), Some(get(&env, "OS_REGION_NAME")));
    assert_eq!(eo.availability, Availability::Public);
}

#[tokio::test]
#[ignore = "needs a real Keystone: scripts/test starts one"]
async fn wrong_password_is_an_authentication_error_with_keystones_message() {
    let env = main_env();
    let _writer = WRITERS.lock().await;
    let mut o = opts(&env);
    // The probe user: a failed login writes its failed-login counter, not the admin's.
    o.username = Some(get(&env, "VSESS_KEYSTONE_PROBE_USERNAME").to_owned());
    o.project_id = None;
    o.password = Some("not-the-password".into());
    match authenticated_client_with(o, config(Some(Duration::from_secs(30)))).await {
        Err(Error::Authentication(m)) => {
            assert!(
                m.contains("The request you have made requires authentication."),
                "{m}"
            );
            assert!(!m.contains("not-the-password"), "the password leaked: {m}");
        }
        other => panic!("expected Error::Authentication, got {other:?}"),
    }
    // An unknown project in the scope is a 401 too (wire/keystone/09).
    let mut o = opts(&env);
    o.project_id = Some("0000000000000000000000000000dead".into());
    assert!(matches!(
        authenticated_client_with(o, config(Some(Duration::from_secs(30)))).await,
        Err(Error::Authentication(_))
    ));
}

#[tokio::test]
#[ignore = "needs a real Keystone: scripts/test starts one"]
async fn catalog_lookup_by_region_and_interface() {
    let env = main_env();
    let provider = login(&env, false).await;
    let project_id = get(&env, "OS_PROJECT_ID");

    let c1 = service_client(&provider, "compute", &region("RegionOne")).unwrap();
    assert_eq!(c1.endpoint().as_str(), "http://127.0.0.1:8774/v2.1/");
    let c2 = service_client(&provider, "compute", &region("RegionTwo")).unwrap();
    assert_eq!(c2.endpoint().as_str(), "http://127.0.0.1:18774/v2.1/");
    let internal = service_client(
        &provider,
        "compute",
        &region("RegionOne").with_availability(Availability::Internal),
    )
    .unwrap();
    assert_eq!(internal.endpoint().as_str(), "http://127.0.0.1:8774/v2.1/");
    // swift's URL template is filled in with the project id.
    let swift = service_client(&provider, "object-store", &region("RegionTwo")).unwrap();
    assert_eq!(
        swift.endpoint().as_str(),
        format!("http://127.0.0.1:18080/v1/AUTH_{project_id}/")
    );
    let identity = identity_v3(&provider, &region("RegionOne")).unwrap();
    assert_eq!(
        identity.endpoint().as_str(),
        format!("{}/", get(&env, "OS_AUTH_URL"))
    );

    // Missing region, interface and service each name what the catalog does have.
    let msg = |r: vsess_client::Result<openstack::ServiceClient>| match r {
        Err(Error::Config(m)) => m,
        other => panic!("expected a Config error, got {other:?}"),
    };
    let m = msg(service_client(
        &provider,
        "object-store",
        &region("RegionOne"),
    ));
    assert!(
        m.contains("\"object-store\" in region \"RegionOne\""),
        "{m}"
    );
    assert!(m.contains("public in RegionTwo"), "{m}");
    let m = msg(service_client(
        &provider,
        "compute",
        &region("RegionTwo").with_availability(Availability::Internal),
    ));
    assert!(m.contains("no internal endpoint"), "{m}");
    let m = msg(service_client(&provider, "image", &region("RegionOne")));
    assert!(m.contains("no service of type \"image\""), "{m}");
    assert!(m.contains("compute (nova)"), "{m}");
    let m = msg(identity_v3(&provider, &region("RegionThree")));
    assert!(m.contains("\"identity\" in region \"RegionThree\""), "{m}");

    // GET /v3/auth/catalog gives the same catalog as the token.
    let fetched = catalog::get(&identity).await.unwrap();
    let ids = |c: &openstack::ServiceCatalog| {
        let mut v: Vec<String> = c
            .entries
            .iter()
            .flat_map(|e| e.endpoints.iter().map(|ep| ep.id.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&fetched), ids(&provider.catalog()));
    assert!(ids(&fetched).len() >= 7);
}

#[tokio::test]
#[ignore = "needs a real Keystone: scripts/test starts one"]
async fn projects_page_ten_at_a_time() {
    let env = main_env();
    let provider = login(&env, false).await;
    let identity = identity_v3(&provider, &region("RegionOne")).unwrap();
    let total: usize = get(&env, "VSESS_KEYSTONE_PROJECTS_TOTAL").parse().unwrap();
    assert!(total >= 27, "seed.py makes 25 projects plus admin and demo");

    let pager = projects::list(
        &identity,
        &projects::ListOpts {
            limit: Some(10),
            ..Default::default()
        },
    )
    .unwrap();
    let mut sizes = Vec::new();
    let mut next_links = 0;
    pager
        .each_page(|page| {
            assert_eq!(page.response().status(), 200);
            sizes.push(page.len());
            if page.next_url().is_some() {
                next_links += 1;
            }
            Ok(true)
        })
        .await
        .unwrap();
    assert_eq!(sizes.iter().sum::<usize>(), total);
    assert_eq!(sizes.len(), total.div_ceil(10), "pages: {sizes:?}");
    assert!(
        sizes[..sizes.len() - 1].iter().all(|s| *s == 10),
        "{sizes:?}"
    );
    assert!(next_links >= sizes.len() - 1);

    // Stop early: after the second page nothing more is fetched.
    let mut pages = 0;
    pager
        .each_page(|_| {
            pages += 1;
            Ok(pages < 2)
        })
        .await
        .unwrap();
    assert_eq!(pages, 2);

    // all_pages: every project once, in Keystone's order (by id), the fixtures among them.
    let all = pager.all_pages().await.unwrap();
    assert_eq!(all.len(), total);
    let ids: Vec<&str> = all.iter().map(|p| p.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "ordered by id, no duplicates");
    let names: HashSet<&str> = all.iter().map(|p| p.name.as_str()).collect();
    for i in 1..=25 {
        assert!(
            names.contains(format!("page-{i:02}").as_str()),
            "page-{i:02} missing"
        );
    }
    // The same set unpaged, and with a filter.
    let unpaged = projects::list(&identity, &projects::ListOpts::default())
        .unwrap()
        .all_pages()
        .await
        .unwrap();
    assert_eq!(unpaged.len(), total);
    let demo = projects::list(
        &identity,
        &projects::ListOpts {
            name: Some("demo".into()),
            ..Default::default()
        },
    )
    .unwrap()
    .all_pages()
    .await
    .unwrap();
    assert_eq!(demo.len(), 1);
    assert_eq!(demo[0].id, get(&env, "VSESS_KEYSTONE_DEMO_PROJECT_ID"));
}

#[tokio::test]
#[ignore = "needs a real Keystone: scripts/test starts one"]
async fn projects_get_and_not_found() {
    let env = main_env();
    let provider = login(&env, false).await;
    let identity = identity_v3(&provider, &EndpointOpts::default()).unwrap();
    let r = projects::get(&identity, get(&env, "OS_PROJECT_ID"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.request_id().is_some_and(|id| id.starts_with("req-")));
    let p = r.extract().unwrap();
    assert_eq!(p.id, get(&env, "OS_PROJECT_ID"));
    assert_eq!(p.name, "admin");
    assert_eq!(p.domain_id, "default");
    assert!(p.enabled);
    let demo = projects::get(&identity, get(&env, "VSESS_KEYSTONE_DEMO_PROJECT_ID"))
        .await
        .unwrap()
        .extract()
        .unwrap();
    assert_eq!(demo.name, "demo");
    assert_eq!(demo.description, "non-admin test project");
    match projects::get(&identity, "0000000000000000000000000000beef").await {
        Err(Error::Http {
            status: 404, body, ..
        }) => {
            assert!(body.contains("Could not find project"), "{body}")
        }
        other => panic!("expected 404, got {other:?}"),
    }
    // The projects the token's user may scope to.
    let mine = projects::list_available(&identity)
        .unwrap()
        .all_pages()
        .await
        .unwrap();
    assert!(mine.iter().any(|p| p.id == get(&env, "OS_PROJECT_ID")));
}

#[tokio::test]
#[ignore = "needs a real Keystone: scripts/test starts one"]
async fn users_list_and_get() {
    let env = main_env();
    let provider = login(&env, false).await;
    let identity = identity_v3(&provider, &region("RegionOne")).unwrap();
    let all = users::list(&identity, &users::ListOpts::default())
        .unwrap()
        .all_pages()
        .await
        .unwrap();
    let names: HashSet<&str> = all.iter().map(|u| u.name.as_str()).collect();
    assert!(
        names.contains("admin") && names.contains("demo"),
        "{names:?}"
    );
    // One per page: same users, one page each.
    let mut pages = 0;
    let mut paged = Vec::new();
    users::list(
        &identity,
        &users::ListOpts {
            limit: Some(1),
            ..Default::default()
        },
    )
    .unwrap()
    .each_page(|page| {
        pages += 1;
        paged.extend(page.into_items());
        Ok(true)
    })
    .await
    .unwrap();
    assert_eq!(pages, all.len());
    assert_eq!(paged.len(), all.len());
    let demo = users::get(&identity, get(&env, "VSESS_KEYSTONE_DEMO_USER_ID"))
        .await
        .unwrap()
        .extract()
        .unwrap();
    assert_eq!(demo.name, "demo");
    assert_eq!(
        demo.default_project_id.as_deref(),
        Some(get(&env, "VSESS_KEYSTONE_DEMO_PROJECT_ID"))
    );
    let filtered = users::list(
        &identity,
        &users::ListOpts {
            name: Some("demo".into()),
            ..Default::default()
        },
    )
    .unwrap()
    .all_pages()
    .await
    .unwrap();
    assert_eq!(filtered.len(), 1);
}

#[tokio::test]
#[ignore = "needs a real Keystone: scripts/test starts one"]
async fn tokens_validate_and_revoke() {
    let env = main_env();
    let admin = login(&env, false).await;
    let identity = identity_v3(&admin, &region("RegionOne")).unwrap();
    let victim = login(&env, false).await;
    let victim_token = victim.token_id().unwrap();
    let _writer = WRITERS.lock().await;

    let r = tokens::get(&identity, &victim_token).await.unwrap();
    assert_eq!(r.status(), 200);
    let t = r.extract().unwrap();
    assert_eq!(t.id, victim_token);
    assert_eq!(t.user.name, "admin");
    assert!(!r.extract_service_catalog().unwrap().entries.is_empty());
    assert!(tokens::validate(&identity, &victim_token).await.unwrap());

    let r = tokens::revoke(&identity, &victim_token).await.unwrap();
    assert_eq!(r.status(), 204);

    assert!(!tokens::validate(&identity, &victim_token).await.unwrap());
    match tokens::get(&identity, &victim_token).await {
        Err(Error::Http {
            status: 404, body, ..
        }) => {
            assert_eq!(body, "Failed to validate token")
        }
        other => panic!("expected 404, got {other:?}"),
    }
    // The revoked token's own client (no re-authentication) gets 401, as an unauthenticated
    // error (the session, not the credentials). (Right after a revocation keystone's cache may still let a call
    // or two through, so this waits for the refusal, for 10 s at most.)
    let victim_identity = identity_v3(&victim, &region("RegionOne")).unwrap();
    let start = std::time::Instant::now();
    loop {
        match projects::get(&victim_identity, get(&env, "OS_PROJECT_ID")).await {
            Err(e) if e.is_unauthenticated() => {
                assert!(!matches!(e, Error::Authentication(_)), "{e:?}");
                assert!(e.to_string().contains("requires authentication"), "{e}");
                assert!(!e.to_string().contains(&victim_token));
                break;
            }
            Ok(_) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("expected an unauthenticated error, got {other:?}"),
        }
    }
    assert_eq!(
        victim.token_issue_count(),
        1,
        "no re-authentication without allow_reauth"
    );
    // The admin's token is unaffected.
    assert!(tokens::validate(&identity, &admin.token_id().unwrap())
        .await
        .unwrap());
}

/// Many concurrent calls with a dead token; the client must get exactly one new token.
async fn fifty_concurrent_calls(provider: &ProviderClient, project_id: &str) -> HashSet<String> {
    let identity = identity_v3(provider, &EndpointOpts::default()).unwrap();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let c = identity.clone();
            let id = project_id.to_owned();
            let p = provider.clone();
            tokio::spawn(async move {
                let project = projects::get(&c, &id).await?.extract()?;
                Ok::<_, Error>((project.id, p.token_id().unwrap_or_default()))
            })
        })
        .collect();
    let mut tokens_seen = HashSet::new();
    for c in calls {
        let (id, token) = c.await.unwrap().unwrap();
        assert_eq!(id, project_id);
        tokens_seen.insert(token);
    }
    tokens_seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a real Keystone: scripts/test starts one"]
async fn reauth_after_revocation_is_single_flight() {
    let env = main_env();
    let provider = login(&env, true).await;
    let old = provider.token_id().unwrap();
    let identity = identity_v3(&provider, &EndpointOpts::default()).unwrap();
    // Revoke the client's own token (gophercloud's cue, like an expiry: 401 on next use).
    {
        let _writer = WRITERS.lock().await;
        tokens::revoke(&identity, &old).await.unwrap();
    }
    wait_until_refused(&env, &old).await;
    let seen = fifty_concurrent_calls(&provider, get(&env, "OS_PROJECT_ID")).await;
    assert_eq!(provider.token_issue_count(), 2, "exactly one new token");
    assert_eq!(provider.reauth_count(), 1);
    assert!(provider.unauthorized_count() >= 1);
    let new = provider.token_id().unwrap();
    assert_ne!(new, old);
    // Calls end on the new token; keystone's cache may still have let one through on the old.
    assert!(seen.contains(&new));
    assert!(
        seen.is_subset(&HashSet::from([new, old])),
        "{} tokens",
        seen.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a real Keystone: scripts/test starts one"]
async fn reauth_after_expiry_is_single_flight() {
    let env = short_env();
    let mut o = opts(&env);
    o.allow_reauth = true;
    // No renewal ahead of expiry, so that the calls really meet Keystone's 401.
    let provider = authenticated_client_with(o, config(None)).await.unwrap();
    let first = provider.token().unwrap();
    let lifetime = first.expires_at - first.issued_at.unwrap();
    assert!(
        lifetime <= chrono::Duration::seconds(30),
        "the short-expiry Keystone issues {lifetime} tokens"
    );
    let wait = (first.expires_at - Utc::now() + chrono::Duration::milliseconds(1500))
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait).await;
    let identity = identity_v3(&provider, &EndpointOpts::default()).unwrap();
    assert!(
        !tokens::validate(&identity, &first.id).await.unwrap(),
        "the first token has expired"
    );
    let seen = fifty_concurrent_calls(&provider, get(&env, "OS_PROJECT_ID")).await;
    assert_eq!(provider.token_issue_count(), 2, "exactly one new token");
    assert_eq!(provider.reauth_count(), 1);
    assert!(provider.unauthorized_count() >= 1, "Keystone said 401");
    let second = provider.token().unwrap();
    assert_ne!(second.id, first.id);
    assert!(second.expires_at > first.expires_at);
    assert_eq!(seen, HashSet::from([second.id]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a real Keystone: scripts/test starts one"]
async fn tokens_are_renewed_before_expiry_without_a_401() {
    let env = short_env();
    let mut o = opts(&env);
    o.allow_reauth = true;
    // A 30 s margin on a ~10 s token is capped at half its lifetime.
    let provider = authenticated_client_with(o, config(Some(Duration::from_secs(30))))
        .await
        .unwrap();
    let first = provider.token().unwrap();
    let issued = first.issued_at.unwrap();
    let half = (first.expires_at - issued) / 2;
    let renew_at = first.expires_at - half + chrono::Duration::milliseconds(300);
    tokio::time::sleep((renew_at - Utc::now()).to_std().unwrap_or_default()).await;
    assert!(Utc::now() < first.expires_at, "still valid when renewed");
    let seen = fifty_concurrent_calls(&provider, get(&env, "OS_PROJECT_ID")).await;
    assert_eq!(
        provider.token_issue_count(),
        2,
        "renewed once, ahead of expiry"
    );
    assert_eq!(provider.unauthorized_count(), 0, "no call met a 401");
    let second = provider.token().unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(seen, HashSet::from([second.id]));
}
