// A local OpenID Connect provider for the console's browser test (npm's oidc-provider), on
// 127.0.0.1 only. Its people and their console roles come from the PEOPLE environment variable:
// {"login": {"email": ..., "aiaudit_roles": [...]}}; any password signs in (the provider's own
// development sign-in pages). Usage: node oidc_provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
import Provider from "oidc-provider";

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const people = JSON.parse(process.env.PEOPLE || "{}");
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{ client_id: clientId, client_secret: clientSecret, redirect_uris: [redirectUri],
              grant_types: ["authorization_code"], response_types: ["code"],
              token_endpoint_auth_method: "client_secret_basic" }],
  scopes: ["openid", "email", "aiaudit"],
  claims: { openid: ["sub"], email: ["email", "email_verified"], aiaudit: ["aiaudit_roles"] },
  conformIdTokenClaims: false, // the console reads who and which roles from the ID token
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    const person = people[id];
    if (!person) return undefined;
    return { accountId: id, async claims() { return { sub: id, email: person.email, email_verified: true,
                                                       aiaudit_roles: person.aiaudit_roles }; } };
  },
  cookies: { keys: ["aiaudit-test-cookie-key-not-a-secret"] },
});
provider.proxy = false;
provider.listen(Number(port), "127.0.0.1", () => console.log(`oidc-provider on ${issuer}`));
