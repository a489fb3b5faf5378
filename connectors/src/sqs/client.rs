//! The SQS client of a producer: the one given, or one made from the options and the
//! environment, with a single HTTPS stack (rustls on ring).

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::Client;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

use super::SqsOptions;
use crate::error::Error;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The client for `options`.
pub(super) fn build(options: &SqsOptions) -> Result<Client, Error> {
    if let Some(client) = &options.client {
        return Ok(client.clone());
    }
    let credentials = match &options.credentials {
        Some(credentials) => credentials.clone(),
        None => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) => {
                Credentials::new(key, secret, env("AWS_SESSION_TOKEN"), None, "environment")
            }
            _ => return Err(Error::invalid(
                "sqs.credentials",
                "none",
                "must be given (SqsOptions::credentials), in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                     or by a client (SqsOptions::client)",
            )),
        },
    };
    let region = options
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_owned());
    let http =
        aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    let mut config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(credentials)
        .http_client(http);
    if let Some(url) = &options.endpoint_url {
        config = config.endpoint_url(url);
    }
    Ok(Client::from_conf(config.build()))
}
