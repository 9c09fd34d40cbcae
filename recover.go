package cowdb

import (
	"errors"
	"fmt"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/internal/record"
)

// recover opens the log and replays every record after the checkpoint
// (DESIGN §10), applying each one exactly as the live path did: the same
// writer.apply, a batch per record, frees tagged with the record's LSN.
// Unless ReadOnly, it then writes a checkpoint so the replayed log can be
// recycled; ReadOnly replays into memory only.
func (db *DB) recover() error {
	if err := db.openWAL(); err != nil {
		return err
	}
	replayed := 0
	db.mu.Lock()
	err := db.wal.Replay(db.mu.cpLSN+1, func(lsn format.LSN, payload []byte) error {
		replayed++
		return db.replayLocked(lsn, payload)
	})
	db.mu.Unlock()
	if err != nil {
		return fmt.Errorf("cowdb: replaying the log of %s: %w", db.dir, err)
	}
	db.stats.replayed.Store(int64(replayed))
	if replayed > 0 {
		db.logger.Info("cowdb: recovered", "dir", db.dir, "records", replayed, "lsn", db.mu.lastLSN)
		if !db.opts.ReadOnly {
			err := db.checkpoint()
			if errors.Is(err, ErrNoSpace) {
				// Open anyway: the log still holds what it replayed, and
				// a checkpoint succeeds once space is freed.
				db.logger.Warn("cowdb: no space for the checkpoint after recovery; the log keeps the writes", "dir", db.dir, "err", err)
				return nil
			}
			return err
		}
	}
	return nil
}

// replayLocked applies one logged record.
func (db *DB) replayLocked(lsn format.LSN, payload []byte) error {
	if lsn != db.mu.lastLSN+1 {
		return format.Corruptf(fmt.Sprintf("log record %d", lsn), format.ErrMalformed, "follows record %d", db.mu.lastLSN)
	}
	ops, err := record.Decode(payload)
	if err != nil {
		return fmt.Errorf("log record %d: %w", lsn, err)
	}
	if len(ops) == 1 && isRootOp(ops[0].Kind) {
		if err := db.applyRootOpLocked(&ops[0], lsn); err != nil {
			return fmt.Errorf("log record %d: %w", lsn, err)
		}
		db.mu.lastLSN = lsn
		db.cur.Store(&version{ns: db.mu.live, lsn: lsn})
		return nil
	}
	w, err := db.newWriterLocked()
	if err != nil {
		return err
	}
	w.replay = true
	for _, op := range ops {
		if err := w.apply(op); err != nil {
			w.abort()
			return fmt.Errorf("log record %d: %w", lsn, err)
		}
	}
	return db.publishLocked(w, lsn)
}
