package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/store"
)

// Bounds of a device secret set by an operator, in bytes of printable
// ASCII. Generated secrets are 32 hex characters (128 random bits).
const (
	MinDeviceSecretLen = 16
	MaxDeviceSecretLen = 128
)

// ErrDeviceRefused is AuthenticateDevice's answer to an unknown device, a
// device without a secret, or a wrong secret.
var ErrDeviceRefused = errors.New("auth: device id or secret refused")

// deviceSecretDigest is what the store keeps of a device secret: its
// SHA-256 in hex. Secrets are long and random (or at least
// MinDeviceSecretLen characters), so a fast digest is enough and a
// connection flood costs no bcrypt.
func deviceSecretDigest(secret string) string {
	d := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(d[:])
}

func checkDeviceSecret(s string) error {
	if len(s) < MinDeviceSecretLen || len(s) > MaxDeviceSecretLen {
		return apierr.InvalidParameters.With(fmt.Sprintf("secret must have %d to %d characters", MinDeviceSecretLen, MaxDeviceSecretLen))
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return apierr.InvalidParameters.With("secret must be printable ASCII without spaces")
		}
	}
	return nil
}

// SetDeviceSecret sets the MQTT secret of a tracker and returns it: secret
// itself when not empty (MinDeviceSecretLen..MaxDeviceSecretLen printable
// ASCII), or a new random one. Only its digest is stored, so the secret
// can be shown once, here. A deleted or unknown tracker is
// apierr.EntityNotFound.
func (s *Service) SetDeviceSecret(ctx context.Context, trackerID int64, secret string) (string, error) {
	if secret == "" {
		secret = newHash()
	} else if err := checkDeviceSecret(secret); err != nil {
		return "", err
	}
	err := s.st.SetDeviceSecret(ctx, trackerID, deviceSecretDigest(secret))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", fmt.Errorf("set device secret: %w: %w", apierr.EntityNotFound.With("tracker"), err)
	case err != nil:
		return "", dbError("set device secret", err)
	}
	return secret, nil
}

// AuthenticateDevice checks an MQTT client's device id and secret,
// connecting from the address from ("host:port", may be empty). The
// device id and the address share the sign-in throttle's budgets (the
// device id as a login), so a refused device or address gets an
// *apierr.Throttled. Anything else refused is ErrDeviceRefused; a store
// failure is apierr.DatabaseError.
func (s *Service) AuthenticateDevice(ctx context.Context, deviceID, secret, from string) error {
	try, err := s.throttle.Attempt("device\x00"+deviceID, from)
	if err != nil {
		return err
	}
	want, err := s.st.DeviceSecret(ctx, deviceID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrDeviceRefused
	case err != nil:
		try.Undo()
		return dbError("device secret", err)
	}
	got := deviceSecretDigest(secret)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return ErrDeviceRefused
	}
	try.OK()
	return nil
}
