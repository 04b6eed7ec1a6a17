//! The AWS KMS provider against moto's KMS server: generate, open, re-wrap, and refusals of
//! wrapped keys that were moved, tampered with or named under another master key.

use std::sync::Arc;

use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_tests::TestKms;
use mailroom_vault::{CacheLimits, Field, KeyContext, KeyProvider, ProviderError, SealContext, Vault, VaultError};
use secrecy::{ExposeSecret, SecretString};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_key_from_kms_opens_only_under_its_own_context_and_master_key() {
    let kms = TestKms::start().await;
    let p = kms.provider();
    let ctx = KeyContext { workspace: WorkspaceId::new(), version: 1 };
    let (key, wrapped) = p.generate(ctx).await.unwrap();
    assert_eq!(wrapped.provider, "aws-kms");
    assert!(wrapped.kms_key_id.contains(&kms.settings.key_id), "{}", wrapped.kms_key_id);
    assert_eq!(p.unwrap(&wrapped).await.unwrap().expose_secret(), key.expose_secret());

    for moved in [KeyContext { version: 2, ..ctx }, KeyContext { workspace: WorkspaceId::new(), ..ctx }] {
        let w = mailroom_vault::WrappedKey { context: moved, ..wrapped.clone() };
        assert!(matches!(p.unwrap(&w).await, Err(ProviderError::Rejected(c)) if c == moved));
    }
    let mut tampered = wrapped.clone();
    let mid = tampered.blob.len() / 2;
    tampered.blob[mid] ^= 0x01;
    assert!(matches!(p.unwrap(&tampered).await, Err(ProviderError::Rejected(_))));
    let other_key = kms.create_key().await;
    let named_other = mailroom_vault::WrappedKey { kms_key_id: other_key, ..wrapped.clone() };
    // AWS answers IncorrectKeyException (a rejection); moto answers AccessDeniedException,
    // which the provider treats as passing (an IAM policy can be fixed). Either way: no key.
    let r = p.unwrap(&named_other).await;
    assert!(r.is_err(), "a blob opened under a key it does not name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_master_key_rewraps_workspace_keys_without_touching_sealed_values() {
    let kms = TestKms::start().await;
    let old = Vault::new(Arc::new(kms.provider()), CacheLimits::default());
    let ws = WorkspaceId::new();
    let key = old.create_workspace_key(ws, 1).await.unwrap();
    let ctx = SealContext { workspace: ws, mailbox: MailboxId::new(), field: Field::SmtpPassword };
    let sealed = old.seal(&key, &ctx, &SecretString::from("hunter2")).await.unwrap();

    let new_key = kms.create_key().await;
    let new = Vault::new(Arc::new(kms.provider_for(&new_key)), CacheLimits::default());
    let rewrapped = new.rewrap(&key).await.unwrap();
    assert!(rewrapped.kms_key_id.contains(&new_key));
    assert_ne!(rewrapped.blob, key.blob);
    assert_eq!(new.open(&rewrapped, &ctx, &sealed).await.unwrap().expose_secret(), "hunter2");
    assert_eq!(new.stats().provider_calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_opens_of_a_cold_workspace_make_one_kms_call() {
    let kms = TestKms::start().await;
    let ws = WorkspaceId::new();
    let sealer = Vault::new(Arc::new(kms.provider()), CacheLimits::default());
    let key = sealer.create_workspace_key(ws, 1).await.unwrap();
    let ctx = SealContext { workspace: ws, mailbox: MailboxId::new(), field: Field::SmtpPassword };
    let sealed = sealer.seal(&key, &ctx, &SecretString::from("pw")).await.unwrap();

    let cold = Vault::new(Arc::new(kms.provider()), CacheLimits::default());
    let before = kms.proxy.connections();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (v, k, s) = (cold.clone(), key.clone(), sealed.clone());
            tokio::spawn(async move { v.open(&k, &ctx, &s).await.map(|p| p.expose_secret().len()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 2);
    }
    let stats = cold.stats();
    assert_eq!(stats.provider_calls, 1, "{stats:?}");
    assert_eq!(stats.hits + stats.misses, 100, "{stats:?}");
    assert_eq!(kms.proxy.connections() - before, 1, "one connection to KMS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_unreachable_or_throttling_is_unavailable_not_a_rejection() {
    use mailroom_devkit::kms::KmsMode;
    let kms = TestKms::start().await;
    let p = kms.provider();
    let ctx = KeyContext { workspace: WorkspaceId::new(), version: 1 };
    let (_, wrapped) = p.generate(ctx).await.unwrap();
    for mode in [KmsMode::Down, KmsMode::Throttle] {
        kms.proxy.set(mode);
        let cold = Vault::new(Arc::new(kms.provider()), CacheLimits::default());
        let sctx = SealContext { workspace: ctx.workspace, mailbox: MailboxId::new(), field: Field::SmtpPassword };
        let err = cold.seal(&wrapped, &sctx, &SecretString::from("x")).await.unwrap_err();
        assert!(matches!(err, VaultError::Provider(ProviderError::Unavailable(_))), "{mode:?}: {err:?}");
    }
    kms.proxy.set(KmsMode::Up);
    assert!(p.unwrap(&wrapped).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_check_refuses_a_kms_key_that_is_missing_or_in_another_region_with_kms_s_reason() {
    use mailroom_keyring::check::{self, CheckError};
    use mailroom_tests::{Options, TestApp};
    use mailroom_vault::{AwsKmsProvider, AwsKmsSettings, LocalProvider};
    let kms = TestKms::start().await;
    let opts = Options { in_process_worker: false, provider: Some(Arc::new(kms.provider())), ..Options::default() };
    let app = TestApp::spawn_with(opts).await;
    app.other_workspace_token().await;
    let vault = |p: Arc<dyn KeyProvider>| Vault::new(p, CacheLimits::default());

    let uses = check::master_keys(&app.pool, &vault(Arc::new(kms.provider()))).await.unwrap();
    assert_eq!(uses.len(), 1);
    assert_eq!(uses[0].keys, 2, "both workspaces' keys, proved by one unwrap");
    assert!(uses[0].master.starts_with("aws-kms:arn:aws:kms:us-east-1:"), "{}", uses[0].master);

    let missing = check::master_keys(&app.pool, &vault(Arc::new(kms.provider_for("alias/no-such-key")))).await;
    let Err(CheckError::Provider(ProviderError::Refused { reason, .. })) = missing else { panic!("{missing:?}") };
    assert!(reason.contains("NotFoundException"), "KMS's own reason: {reason}");

    let elsewhere = AwsKmsSettings { region: "eu-west-3".into(), ..kms.settings.clone() };
    let other_region = AwsKmsProvider::with_static_credentials(&elsewhere, "test", "test");
    let wrong_region = check::master_keys(&app.pool, &vault(Arc::new(other_region))).await;
    assert!(matches!(wrong_region, Err(CheckError::Provider(ProviderError::Refused { .. }))), "{wrong_region:?}");

    let local = check::master_keys(&app.pool, &vault(Arc::new(LocalProvider::from_bytes([3; 32])))).await;
    let Err(CheckError::Foreign { found, keys, .. }) = local else { panic!("{local:?}") };
    assert!(found.starts_with("aws-kms:") && keys == 2, "{found} {keys}");
    assert_eq!(app.count("SELECT count(*) FROM workspace_keys WHERE state = 'active'").await, 2, "nothing changed");
    app.stop().await;
}
