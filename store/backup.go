package store

import (
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// Backup writes to w a consistent copy of the database file, as of the
// moment it is called: every message whose Put returned before it is in
// the copy (it waits for them like a read does), and writes go on while it
// copies (bbolt's read transactions do not block them). The copy is sealed
// like the store: it needs the store's key (Files.Key) to be read.
// size, called once before any byte is written, gets the copy's length.
func (s *Store) Backup(w io.Writer, size func(int64) error) error {
	s.settle()
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := size(tx.Size()); err != nil {
			return err
		}
		_, err := tx.WriteTo(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: backup: %w", viewErr(err))
	}
	return nil
}
