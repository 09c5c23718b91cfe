package fleet

import (
	"crypto/sha256"
	"encoding/hex"
)

// CredentialDigest is what fleetwire keeps of a credential (a session hash
// or an API key): the hex SHA-256 of it, 64 characters. The store holds
// and is looked up by the digest only, so a copy of the database gives
// nobody a working credential. The digest also names an ended credential
// on the bus (bus.KindLogout), so logout announcements carry no secrets.
func CredentialDigest(hash string) string {
	d := sha256.Sum256([]byte(hash))
	return hex.EncodeToString(d[:])
}
