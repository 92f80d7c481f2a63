package configs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNotificationsValidated: the notifications section loads, and every
// mistake is refused naming its key.
func TestNotificationsValidated(t *testing.T) {
	ok := `notifications:
  webhooks:
    - {name: ops, url: "https://hooks.example.com/x", secret_env: HOOK, events: [certificate.issued, upstream.down]}
  email:
    smtp: {addr: "smtp.example.com:587", username: u, password_file: /etc/pw}
    from: acmebridge@example.com
    admins: [pki@example.com]
`
	c, err := Load(write(t, ok))
	require.NoError(t, err)
	require.Equal(t, "required", c.Notifications.Email.SMTP.StartTLS, "STARTTLS is required unless said otherwise")
	require.Equal(t, AccountMailEvents, c.Notifications.Email.MailEvents())
	require.True(t, c.Notifications.On())

	for _, tc := range []struct{ yaml, want string }{
		{"notifications:\n  webhooks: [{name: a, url: \"ftp://x/\", secret_env: S}]\n", "notifications.webhooks[0].url"},
		{"notifications:\n  webhooks: [{name: a, url: \"https://u:p@x/\", secret_env: S}]\n", "notifications.webhooks[0].url"},
		{"notifications:\n  webhooks: [{name: a, url: \"https://x/\"}]\n", "exactly one of secret_file and secret_env"},
		{"notifications:\n  webhooks: [{name: a, url: \"https://x/\", secret_env: S, events: [cert.issued]}]\n", "notifications.webhooks[0].events[0]"},
		{"notifications:\n  webhooks: [{name: a, url: \"https://x/\", secret_env: S}, {name: a, url: \"https://y/\", secret_env: S}]\n", "notifications.webhooks[1].name"},
		{"notifications:\n  webhooks: [{name: a, url: \"https://x/\", secret_env: S, secret: x}]\n", "secret"},
		{"notifications:\n  email: {from: a@example.com}\n", "notifications.email.smtp.addr"},
		{"notifications:\n  email: {smtp: {addr: \"h:25\", starttls: off, username: u, password_file: p}, from: a@example.com}\n", "in the clear"},
		{"notifications:\n  email: {smtp: {addr: \"h:25\", starttls: maybe}, from: a@example.com}\n", "notifications.email.smtp.starttls"},
		{"notifications:\n  email: {smtp: {addr: \"h:25\"}, from: nobody}\n", "notifications.email.from"},
		{"notifications:\n  retry: {initial: 10ms}\n", "notifications.retry"},
	} {
		_, err := Load(write(t, tc.yaml))
		require.ErrorContains(t, err, tc.want, tc.yaml)
	}
}
