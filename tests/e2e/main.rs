//! End-to-end tests: the API and a send worker against PostgreSQL, the SMTP relay and Dovecot.

mod access;
mod agencies;
mod crashes;
mod delivery;
mod edge;
mod egress;
mod fuzz;
mod gmail;
mod gmail_replies;
mod graph;
mod graph_replies;
mod idempotency;
mod kms;
mod limits;
mod oauth;
mod oauth_imap;
mod oauth_send;
mod pacing;
mod recheck;
mod reconcile;
mod replies;
mod roles;
mod tenancy;
mod validation;
mod vault;
mod webhooks;
