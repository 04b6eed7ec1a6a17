//! A KMS for tests: moto (started with the mail peers) behind a switchable proxy, and a fresh
//! master key per test (moto's state is shared by every test of the binary).

use std::net::SocketAddr;

use mailroom_devkit::kms::{KmsProxy, wait_for_moto};
use mailroom_vault::{AwsKmsProvider, AwsKmsSettings};

use crate::peers;

pub struct TestKms {
    /// Between the engine and moto: cut it off or make it throttle.
    pub proxy: KmsProxy,
    /// Settings that reach moto through the proxy, for this test's master key.
    pub settings: AwsKmsSettings,
    admin: aws_sdk_kms::Client,
}

impl TestKms {
    pub async fn start() -> Self {
        let moto = SocketAddr::from(([127, 0, 0, 1], peers().info.kms_port));
        wait_for_moto(moto).await.expect("moto");
        let proxy = KmsProxy::start(moto).await.expect("KMS proxy");
        let direct = AwsKmsSettings {
            key_id: String::new(),
            region: "us-east-1".into(),
            endpoint: Some(format!("http://{moto}")),
        };
        let admin = AwsKmsProvider::static_client(&direct, "test", "test");
        let mut kms = Self { settings: AwsKmsSettings { endpoint: Some(proxy.endpoint()), ..direct }, proxy, admin };
        kms.settings.key_id = kms.create_key().await;
        kms
    }

    /// Creates another master key (directly at moto, not through the proxy); returns its id.
    pub async fn create_key(&self) -> String {
        let out = self.admin.create_key().description("mailroom test master key").send().await.expect("CreateKey");
        out.key_metadata().expect("key metadata").key_id().to_owned()
    }

    /// Unwraps a stored workspace key directly at moto (leak tests search for the result).
    pub async fn plaintext_of(&self, wrapped: &mailroom_vault::WrappedKey) -> Vec<u8> {
        let mut req = self.admin.decrypt().ciphertext_blob(aws_sdk_kms::primitives::Blob::new(wrapped.blob.clone()));
        for (k, v) in wrapped.context.pairs() {
            req = req.encryption_context(k, v);
        }
        req.send().await.expect("Decrypt").plaintext.expect("plaintext").into_inner()
    }

    /// A provider over this test's master key, through the proxy.
    pub fn provider(&self) -> AwsKmsProvider {
        AwsKmsProvider::with_static_credentials(&self.settings, "test", "test")
    }

    /// A provider over another master key, through the proxy.
    pub fn provider_for(&self, key_id: &str) -> AwsKmsProvider {
        let settings = AwsKmsSettings { key_id: key_id.to_owned(), ..self.settings.clone() };
        AwsKmsProvider::with_static_credentials(&settings, "test", "test")
    }
}
