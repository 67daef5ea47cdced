//! Talking to the auth-center: register, login, and reading `sub`/`sid` out of a token.

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use verifier::contract::SessionKeys;

use crate::client::Target;

/// The auth-center and the account to log in as (`token`, `login`, `refresh`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Credentials {
    /// The auth-center's base URL (loopback only), e.g. `http://127.0.0.1:8080`.
    #[arg(long)]
    pub auth_url: String,
    #[arg(long)]
    pub username: String,
    #[arg(long, env = "LOADGEN_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Register the user first (an existing user is fine).
    #[arg(long)]
    pub register: bool,
}

/// Arguments of `loadgen token`.
#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    pub credentials: Credentials,
    /// The Redis key prefix shared by the auth-center and the verifiers.
    #[arg(long, default_value = "auth")]
    pub prefix: String,
}

/// A logged-in session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub access_token: String,
    pub session_id: String,
    pub sub: String,
    pub sid: String,
}

impl Session {
    /// The Redis key of this session's record.
    pub(crate) fn key(&self, prefix: &str) -> anyhow::Result<String> {
        SessionKeys::new(prefix)
            .session(&self.sub, &self.sid)
            .context("token with malformed sub/sid")
    }

    /// A session from an access token alone (`sub` and `sid` read from its claims).
    pub(crate) fn from_token(access_token: &str) -> anyhow::Result<Self> {
        #[derive(Deserialize)]
        struct Claims {
            sub: String,
            sid: String,
        }
        let payload = access_token
            .split('.')
            .nth(1)
            .context("not a compact JWS")?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)
            .context("token claims without sub/sid")?;
        Ok(Self {
            access_token: access_token.to_string(),
            session_id: claims.sid.clone(),
            sub: claims.sub,
            sid: claims.sid,
        })
    }
}

/// An auth-center client.
pub(crate) struct AuthCenter {
    base: String,
    http: reqwest::Client,
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoginError {
    #[error("login rate-limited (429)")]
    RateLimited,
    #[error("{0:#}")]
    Other(anyhow::Error),
}

impl AuthCenter {
    pub(crate) fn new(base: &str) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        Target::parse(&base)?; // loopback only
        Ok(Self {
            base,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
        })
    }

    /// Registers `username`; an existing user (409) is fine.
    pub(crate) async fn register(&self, username: &str, password: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/v1/register", self.base))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await?;
        match response.status() {
            s if s.is_success() || s == StatusCode::CONFLICT => Ok(()),
            s => bail!(
                "register: {s}: {}",
                response.text().await.unwrap_or_default()
            ),
        }
    }

    /// Logs in: a new session.
    pub(crate) async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Session, LoginError> {
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            session_id: String,
        }
        let response = self
            .http
            .post(format!("{}/v1/login", self.base))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .map_err(|e| LoginError::Other(e.into()))?;
        match response.status() {
            StatusCode::TOO_MANY_REQUESTS => Err(LoginError::RateLimited),
            s if s.is_success() => {
                let body: TokenResponse = response
                    .json()
                    .await
                    .map_err(|e| LoginError::Other(e.into()))?;
                let mut session =
                    Session::from_token(&body.access_token).map_err(LoginError::Other)?;
                session.session_id = body.session_id;
                Ok(session)
            }
            s => Err(LoginError::Other(anyhow::anyhow!(
                "login: {s}: {}",
                response.text().await.unwrap_or_default()
            ))),
        }
    }
}

/// `loadgen token`: shell assignments for a fresh session.
pub(crate) async fn token_command(args: TokenArgs) -> anyhow::Result<String> {
    let account = &args.credentials;
    let auth = AuthCenter::new(&account.auth_url)?;
    if account.register {
        auth.register(&account.username, &account.password).await?;
    }
    let session = auth
        .login(&account.username, &account.password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = session.key(&args.prefix)?;
    Ok(format!(
        "ACCESS_TOKEN='{}'\nSESSION_ID='{}'\nSUB='{}'\nSESSION_KEY='{}'\n",
        session.access_token, session.session_id, session.sub, key
    ))
}
