// An OAuth 2.0 authorization server for the tests (oauth2-mock-server over TLS), scripted to
// behave like Google: it remembers the scopes asked for at /authorize and grants them at the
// code exchange, answers userinfo with the account's email, and refuses a revoked refresh
// token with `invalid_grant`. Started by peers.py; answers commands on stdin, one JSON line
// each: `stats [CLIENT]`, `revoke TOKEN` (the user withdrew the grant), `drop-scope S URI` (the next grant to redirect URI URI omits scope S: tests
// running at once each have their own URI), `reset`.
//   node oauth.mjs MODULE PORT CERT KEY EMAIL
import readline from "node:readline";

const [modulePath, port, cert, key, email] = process.argv.slice(2);
const { OAuth2Server } = await import(modulePath);
const server = new OAuth2Server(key, cert);
await server.issuer.keys.generate("RS256");

const scopes = new Map();
const revoked = new Set();
const drops = new Map();
// Calls per client id (each test registers its own), then per grant type.
let stats = {};
function clientOf(req) {
  const basic = (req.headers.authorization ?? "").match(/^Basic (.+)$/);
  if (basic) return decodeURIComponent(Buffer.from(basic[1], "base64").toString().split(":")[0]);
  return req.body?.client_id ?? "";
}
function count(req, what) {
  const c = (stats[clientOf(req)] ??= {});
  c[what] = (c[what] ?? 0) + 1;
}

server.service.on("beforeAuthorizeRedirect", (redirect, req) => {
  const code = redirect.url.searchParams.get("code");
  if (code) scopes.set(code, String(req.query.scope ?? ""));
});
server.service.on("beforeResponse", (resp, req) => {
  const body = req.body;
  count(req, body.grant_type);
  if (body.grant_type === "authorization_code") {
    const drop = drops.get(body.redirect_uri);
    drops.delete(body.redirect_uri);
    const granted = (scopes.get(body.code) ?? "").split(" ").filter((s) => s && s !== drop);
    resp.body.scope = granted.join(" ");
  } else if (body.grant_type === "refresh_token" && revoked.has(body.refresh_token)) {
    resp.statusCode = 400;
    resp.body = { error: "invalid_grant", error_description: "Token has been expired or revoked." };
  }
});
server.service.on("beforeUserinfo", (resp) => {
  resp.body = { sub: "johndoe", email, email_verified: true };
});
server.service.on("beforeRevoke", (_resp, req) => {
  // The mock parses no body on /revoke: read it here (it arrives with the request).
  let raw = "";
  req.on("data", (chunk) => { raw += chunk; });
  req.on("end", () => {
    const token = new URLSearchParams(raw).get("token");
    if (token) revoked.add(token);
  });
  count(req, "revoked");
});

await server.start(Number(port), "127.0.0.1");
console.log(JSON.stringify({ ready: true }));

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const [cmd, arg, uri] = line.trim().split(/\s+/, 3);
  if (cmd === "stats") console.log(JSON.stringify(arg ? stats[arg] ?? {} : stats));
  else if (cmd === "drop-scope") { drops.set(uri, arg); console.log(JSON.stringify({ drop: arg, uri })); }
  else if (cmd === "reset") { stats = {}; console.log("{}"); }
  else if (cmd === "revoke") { revoked.add(arg); console.log(JSON.stringify({ revoked: revoked.size })); }
  else console.log(JSON.stringify({ error: `unknown command ${cmd}` }));
});
lines.on("close", async () => { await server.stop(); process.exit(0); });
