//! Log in to Keystone v3 from the `OS_*` variables and show who you are and what the
//! catalog offers in a region. The token itself is never printed.
//!
//! ```sh
//! . ~/.cache/vsess-peers/keystone/keystone.env    # or your cloud's openrc
//! cargo run -p vsess-client --example openstack_login [REGION]
//! ```
//!
//! REGION defaults to `OS_REGION_NAME`; the interface comes from `OS_INTERFACE` (public).
use std::process::ExitCode;
use vsess_client::openstack::{self, identity::v3::catalog, AuthOptions, EndpointOpts};

async fn run() -> vsess_client::Result<()> {
    let mut opts = AuthOptions::from_env()?;
    opts.allow_reauth = true;
    let mut endpoint_opts = EndpointOpts::from_env()?;
    if let Some(region) = std::env::args().nth(1) {
        endpoint_opts.region = Some(region);
    }

    let provider = openstack::authenticated_client(opts).await?;
    let Some(token) = provider.token() else {
        return Err(vsess_client::Error::Authentication(
            "no token after authentication".into(),
        ));
    };
    let domain = |d: &Option<openstack::identity::v3::tokens::Domain>| {
        d.as_ref().map(|d| d.name.clone()).unwrap_or_default()
    };
    println!("identity: {}", provider.identity_endpoint());
    println!(
        "user:     {} ({}) in domain {}",
        token.user.name,
        token.user.id,
        domain(&token.user.domain)
    );
    match &token.project {
        Some(p) => println!(
            "project:  {} ({}) in domain {}",
            p.name,
            p.id,
            domain(&p.domain)
        ),
        None if token.system.is_some() => println!("scope:    system"),
        None => println!("scope:    unscoped"),
    }
    let roles: Vec<&str> = token.roles.iter().map(|r| r.name.as_str()).collect();
    println!("roles:    {}", roles.join(", "));
    println!(
        "expires:  {} (in {} min)",
        token.expires_at.to_rfc3339(),
        (token.expires_at - chrono::Utc::now()).num_minutes()
    );

    // The catalog as Keystone lists it now (GET /v3/auth/catalog), filtered by region.
    let region = endpoint_opts.region.clone();
    let entries = match openstack::identity_v3(&provider, &endpoint_opts) {
        Ok(identity) => catalog::get(&identity).await?.entries,
        Err(_) => provider.catalog().entries,
    };
    let in_region =
        |r: &str, id: &str| region.as_deref().is_none_or(|want| want == r || want == id);
    println!("catalog ({}):", region.as_deref().unwrap_or("all regions"));
    for entry in &entries {
        let eps: Vec<_> = entry
            .endpoints
            .iter()
            .filter(|e| in_region(&e.region, &e.region_id))
            .collect();
        if eps.is_empty() {
            continue;
        }
        println!("  {} ({})", entry.service_type, entry.name);
        for e in eps {
            println!("    {:<8} {:<10} {}", e.interface, e.region_id, e.url);
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openstack_login: {e}");
            ExitCode::FAILURE
        }
    }
}
