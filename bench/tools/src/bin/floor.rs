//! `vsess-bench-floor`: the least a cached `vsess ls` can cost on this machine (bench S6).
//!
//! A cached `vsess ls` must start a process, open one TLS connection and make one
//! request with the session it already has. This program does only that, on the CLI's
//! own stack: the SDK's TLS settings (`vsess_client::tls::http_builder`: rustls with
//! ring, the same suites in the same order), reqwest over hyper, tokio's current-thread
//! runtime and the system allocator. It reads no cache file, parses no command line
//! beyond its two arguments and decodes nothing: it writes the body to stdout.
//!
//! Usage: `vsess-bench-floor URL SESSION_ID` (the URL of vsess's `/v2/session` list).
//! The certificate is not verified, as `VSESS_INSECURE=1` does for `vsess ls` in S6.
//! It exits 0 on a 2xx answer and 1 otherwise.
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(id)) = (args.next(), args.next()) else {
        eprintln!("usage: vsess-bench-floor URL SESSION_ID");
        return ExitCode::from(2);
    };
    match run(&url, &id) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vsess-bench-floor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(url: &str, id: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = rt.block_on(async {
        let http = vsess_client::tls::http_builder(&vsess_client::tls::Tls::Insecure)?.build()?;
        let resp = http
            .get(url)
            .header("vmware-api-session-id", id)
            .send()
            .await?
            .error_for_status()?;
        anyhow::Ok(resp.bytes().await?)
    })?;
    std::io::stdout().lock().write_all(&body)?;
    Ok(())
}
