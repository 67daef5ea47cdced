//! The probe behind each binary's `healthcheck` subcommand: one `GET` to the binary's own
//! listener, for container health checks in an image without curl.
//!
//! The address is the configured listen address, with an unspecified IP (`0.0.0.0`, `::`)
//! replaced by loopback. When the listener serves TLS, the probe speaks TLS and accepts
//! exactly the certificate in the configured certificate file (it is talking to itself, so
//! no CA or host name is involved).

// The probe's deadline is real time.
#![allow(clippy::disallowed_methods)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::TlsSettings;

/// Why the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No connection, no answer, or not HTTP.
    #[error("{addr}{path}: {message}")]
    Failed {
        /// Where the probe went.
        addr: SocketAddr,
        /// The path asked for.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// Where a probe for the listen address `listen` connects: loopback in place of an
/// unspecified IP.
///
/// ```
/// let addr = service_kit::healthcheck::probe_address("0.0.0.0:8080".parse().unwrap());
/// assert_eq!(addr.to_string(), "127.0.0.1:8080");
/// ```
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET path` on the listener at `listen` (over TLS when `tls` says so), within `timeout`;
/// `Ok` with the status line when the answer is a 2xx.
///
/// ```no_run
/// # async fn run() -> Result<(), service_kit::healthcheck::ProbeError> {
/// let listen = "0.0.0.0:8080".parse().unwrap();
/// let status = service_kit::healthcheck::probe(
///     listen,
///     "/healthz",
///     &service_kit::TlsSettings::default(),
///     std::time::Duration::from_secs(3),
/// )
/// .await?;
/// println!("{status}");
/// # Ok(()) }
/// ```
pub async fn probe(
    listen: SocketAddr,
    path: &str,
    tls: &TlsSettings,
    timeout: Duration,
) -> Result<String, ProbeError> {
    let addr = probe_address(listen);
    let failed = |message: String| ProbeError::Failed {
        addr,
        path: path.to_owned(),
        message,
    };
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        match &tls.cert_file {
            None => exchange(stream, addr, path).await,
            Some(cert_file) => {
                let pinned = CertificateDer::pem_file_iter(cert_file)
                    .and_then(|mut certs| certs.next().transpose())
                    .map_err(|e| format!("cannot read {}: {e}", cert_file.display()))?
                    .ok_or_else(|| format!("{} holds no certificate", cert_file.display()))?;
                let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(pinned)?));
                let name = ServerName::IpAddress(addr.ip().into());
                let stream = connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS handshake failed: {e}"))?;
                exchange(stream, addr, path).await
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(message)) => Err(failed(message)),
        Err(_) => Err(failed(format!("no answer within {timeout:?}"))),
    }
}

/// Sends the request, reads the status line; a 2xx is success.
async fn exchange<S>(mut stream: S, addr: SocketAddr, path: &str) -> Result<String, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: healthcheck\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.contains(&b'\n') && head.len() < 8192 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status_line = line.lines().next().unwrap_or_default().trim().to_owned();
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status_line.starts_with("HTTP/1.") && code.starts_with('2') && code.len() == 3 {
        Ok(status_line)
    } else if status_line.is_empty() {
        Err("closed without an answer".into())
    } else {
        Err(format!("answered {status_line:?}"))
    }
}

/// A TLS client that accepts exactly `pinned` as the server's certificate.
fn client_config(pinned: CertificateDer<'static>) -> Result<rustls::ClientConfig, String> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = Pinned {
        certificate: pinned,
        provider: provider.clone(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Accepts one certificate, byte for byte, with a valid handshake signature by its key.
#[derive(Debug)]
struct Pinned {
    certificate: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.certificate.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the listener presents another certificate than its certificate file".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
