-- Mailroom's database roles, for a managed PostgreSQL where the user that runs
-- `mailroom migrate` cannot create roles. Run once per cluster as a user that can (the
-- provider's admin user), then run `mailroom migrate` as the database owner: it grants each
-- role what its service needs.
--
-- The three roles own nothing and cannot log in; each service logs in as its own user, a
-- member of its role (set database.api_url, database.send_worker_url and
-- database.reply_worker_url), and acts as the role (Mailroom runs `SET ROLE` on connect).
-- Replace the passwords, and keep them in the services' environment files.

CREATE ROLE mailroom_api NOLOGIN NOINHERIT;
CREATE ROLE mailroom_send NOLOGIN NOINHERIT;
CREATE ROLE mailroom_reply NOLOGIN NOINHERIT;

-- The owner (the user that runs `mailroom migrate`; replace `mailroom_owner` with its name)
-- grants to them and may act as them.
GRANT mailroom_api, mailroom_send, mailroom_reply TO mailroom_owner;

-- One login per service, each a member of its own role only.
CREATE ROLE mailroom_api_login LOGIN PASSWORD 'change-me' IN ROLE mailroom_api;
CREATE ROLE mailroom_send_login LOGIN PASSWORD 'change-me' IN ROLE mailroom_send;
CREATE ROLE mailroom_reply_login LOGIN PASSWORD 'change-me' IN ROLE mailroom_reply;
