package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"lifeline"
	"lifeline/api"
	"lifeline/bundle"
	"lifeline/message"
	"lifeline/store"
)

// export writes what a node holds to one file for a USB stick: a bundle
// of every message, a channel's or a recipient's, within a created range;
// from a running node (--api) or, for a stopped node or a dead kit's SD
// card, from its data directory (--data). Given a message id it writes
// that one envelope, bare, as it always did.
func (c *cli) export(ctx context.Context, args []string) error {
	fs := c.flags("export", "[--api URL | --data DIR] [--channel NAME | --to KEY] [--since TIME] [--until TIME] [--out FILE] [ID]")
	apiURL := fs.String("api", "", apiFlagUsage)
	data := fs.String("data", "", "read the store in this data `directory` instead (a stopped node, a kit's SD card); nothing is written there")
	out := fs.String("out", "", "write to `file` (mode 0600, never over a file) instead of stdout")
	channel := fs.String("channel", "", "only this channel's messages (`name`)")
	to := fs.String("to", "", "only direct messages and receipts to this public `key`")
	since := fs.String("since", "", "only messages created at or after `TIME`: RFC 3339 (2026-12-01, 2026-12-01T08:00:00Z) or a duration back from now (72h, 3d)")
	until := fs.String("until", "", "only messages created before `TIME` (as --since)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if len(pos) > 1 {
		return usagef("give at most one message id")
	}
	if len(pos) == 1 {
		if given["data"] || given["channel"] || given["to"] || given["since"] || given["until"] {
			return usagef("a message id is exported alone, from a running node: no --data, --channel, --to, --since or --until")
		}
		return c.exportOne(ctx, *apiURL, *out, pos[0])
	}
	if given["data"] && given["api"] {
		return usagef("give --api (a running node) or --data (a stopped one), not both")
	}
	if *channel != "" && *to != "" {
		return usagef("give --channel or --to, not both")
	}
	now := time.Now()
	var q api.ExportQuery
	q.Channel, q.To = *channel, *to
	if q.Since, err = parseTime(*since, now); err != nil {
		return usagef("--since %q: %v", *since, err)
	}
	if q.Until, err = parseTime(*until, now); err != nil {
		return usagef("--until %q: %v", *until, err)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return usagef("--until %s is not after --since %s", q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	if *out == "" {
		if f, ok := c.stdout.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				return usagef("a bundle is binary: give --out FILE, or redirect stdout")
			}
		}
	}
	write := func(w io.Writer) error {
		cl, err := c.client(*apiURL)
		if err != nil {
			return err
		}
		return cl.Export(ctx, q, w)
	}
	from := *apiURL
	if *data != "" {
		sq, err := storeQuery(q)
		if err != nil {
			return usagef("%v", err)
		}
		write = func(w io.Writer) error { return exportStopped(ctx, *data, sq, w) }
		from = *data
	}
	st, err := writeBundle(*out, c.stdout, write)
	if err != nil {
		return err
	}
	where := *out
	if where == "" {
		where = "stdout"
	}
	fmt.Fprintf(c.stderr, "exported %d envelopes from %s to %s\n", st.Entries, from, where)
	return nil
}

// exportOne writes one message's signed envelope, bare.
func (c *cli) exportOne(ctx context.Context, apiURL, out, id string) error {
	if _, err := message.ParseID(id); err != nil {
		return usagef("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	cl, err := c.client(apiURL)
	if err != nil {
		return err
	}
	raw, err := cl.Envelope(ctx, id)
	if err != nil {
		return err
	}
	if out == "" {
		_, err = c.stdout.Write(raw)
		return err
	}
	return os.WriteFile(out, raw, 0o644)
}

// parseTime reads an RFC 3339 date-time, an RFC 3339 full date (midnight
// UTC), or a duration back from now (Go's, or whole days: "3d"). "" is the
// zero time: no bound.
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errors.New("want an RFC 3339 time (2026-12-01 or 2026-12-01T08:00:00Z) or a duration back from now (72h, 3d)")
}

// storeQuery is q for a store read directly.
func storeQuery(q api.ExportQuery) (store.ExportQuery, error) {
	var sq store.ExportQuery
	if q.Channel != "" {
		name, err := message.NormaliseChannelName(q.Channel)
		if err != nil {
			return sq, fmt.Errorf("--channel: %w", err)
		}
		id, err := message.Channel(name)
		if err != nil {
			return sq, fmt.Errorf("--channel: %w", err)
		}
		sq.Channel = &id
	}
	if q.To != "" {
		k, err := message.ParsePublicKey(q.To)
		if err != nil {
			return sq, fmt.Errorf("--to: %w", err)
		}
		sq.Recipient = &k
	}
	if !q.Since.IsZero() {
		sq.Since = max(q.Since.UnixMilli(), 0)
	}
	if !q.Until.IsZero() {
		sq.Until = max(q.Until.UnixMilli(), 1)
	}
	return sq, nil
}

// exportStopped writes a bundle of the store in a stopped node's data
// directory, read without writing anything there.
func exportStopped(ctx context.Context, dataDir string, q store.ExportQuery, w io.Writer) error {
	path := filepath.Join(dataDir, lifeline.StoreFile)
	st, err := store.OpenReadOnly(path)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("a node is running on %s: export from it over its API (lifeline export without --data), or stop it first (systemctl stop lifeline)", dataDir)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	bw := bufio.NewWriterSize(w, 64<<10)
	out, err := bundle.NewWriter(bw, time.Now())
	if err != nil {
		return err
	}
	err = st.Export(ctx, q, func(r *store.Record) error { return out.Add(r.Envelope.Raw()) })
	if err == nil {
		err = out.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	return err
}

// writeBundle runs write into the file out (or stdout when out is ""),
// reading what it writes as a bundle on the way: an export cut short is
// an error, and the file is kept only when the bundle is whole. The file
// is made 0600 and never replaces one.
func writeBundle(out string, stdout io.Writer, write func(io.Writer) error) (bundle.Stats, error) {
	var dst io.Writer = stdout
	var tmp *os.File
	if out != "" {
		if _, err := os.Stat(out); err == nil {
			return bundle.Stats{}, fmt.Errorf("%s exists: not replacing it", out)
		}
		var err error
		if tmp, err = os.CreateTemp(filepath.Dir(out), ".lifeline-export-*"); err != nil {
			return bundle.Stats{}, err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		dst = bufio.NewWriterSize(tmp, 64<<10)
	}
	pr, pw := io.Pipe()
	checked := make(chan error, 1)
	var st bundle.Stats
	go func() {
		r, err := bundle.NewReader(pr)
		for err == nil {
			_, err = r.Next()
		}
		if r != nil {
			st = r.Stats()
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
		pr.CloseWithError(err) // the writer stops if the bundle is bad
		io.Copy(io.Discard, pr)
		checked <- err
	}()
	err := write(io.MultiWriter(dst, pw))
	pw.Close()
	cerr := <-checked
	if err == nil && cerr != nil {
		err = fmt.Errorf("the node's answer is not a whole bundle: %w", cerr)
	}
	if err == nil && st.Damaged > 0 {
		err = fmt.Errorf("the node's answer is damaged at byte %d", st.FirstDamage)
	}
	if err != nil {
		return st, fmt.Errorf("export: %w", err)
	}
	if tmp == nil {
		return st, nil
	}
	err = dst.(*bufio.Writer).Flush()
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), out) // fails, rather than replace, if out appeared meanwhile
	}
	if err != nil {
		return st, fmt.Errorf("export: %w", err)
	}
	return st, nil
}

// importFile gives a node what a file holds: a bundle (lifeline export) or
// one bare envelope (lifeline export ID). Every envelope goes through the
// node's own checks, as from any other source.
func (c *cli) importFile(ctx context.Context, args []string) error {
	fs := c.flags("import", "[--api URL] [FILE]  (stdin when FILE is - or absent)")
	apiURL := fs.String("api", "", apiFlagUsage)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("give at most one file")
	}
	in := c.stdin
	if len(pos) == 1 && pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	cl, err := c.client(*apiURL)
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(in, 64<<10)
	if head, _ := br.Peek(len(bundle.Magic)); len(head) > 0 && bundle.IsBundle(head) {
		return c.importBundle(ctx, cl, br)
	}
	// One byte over the limit is enough to tell the node's answer apart
	// from a silently cut envelope.
	raw, err := io.ReadAll(io.LimitReader(br, message.MaxEnvelope+1))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	id, isNew, err := cl.PostEnvelope(ctx, raw)
	if _, refused := errors.AsType[*api.Error](err); refused {
		return fmt.Errorf("the node refused the envelope: %w", err)
	}
	if err != nil {
		return err
	}
	note := "new"
	if !isNew {
		note = "already stored"
	}
	fmt.Fprintf(c.stdout, "%s %s\n", id, note)
	return nil
}

// importTally counts what a node made of a bundle's envelopes.
type importTally struct {
	fresh, stored, refused int64
	reasons                map[string]int64
}

// maxReasons bounds the distinct refusal reasons told apart; more are
// counted as "other".
const maxReasons = 16

func (t *importTally) add(res api.BatchResult) {
	switch {
	case res.Error != "":
		t.refused++
		why := refusalReason(res.Error)
		if _, ok := t.reasons[why]; !ok && len(t.reasons) >= maxReasons {
			why = "other"
		}
		t.reasons[why]++
	case res.New:
		t.fresh++
	default:
		t.stored++
	}
}

// refusalReason groups a node's refusal by the check that failed, whose
// words it quotes; the detail (how far in the future, which field) varies
// by envelope.
func refusalReason(msg string) string {
	for _, e := range []error{message.ErrSignature, message.ErrExpired, message.ErrFuture, message.ErrTooLarge,
		message.ErrTruncated, message.ErrMalformed, message.ErrVersion, message.ErrBadKey} {
		if strings.Contains(msg, e.Error()) {
			return e.Error()
		}
	}
	return msg
}

func (t *importTally) print(w io.Writer) {
	fmt.Fprintf(w, "%d new, %d already stored, %d refused\n", t.fresh, t.stored, t.refused)
	whys := make([]string, 0, len(t.reasons))
	for why := range t.reasons {
		whys = append(whys, why)
	}
	sort.Slice(whys, func(i, j int) bool { return t.reasons[whys[i]] > t.reasons[whys[j]] })
	for _, why := range whys {
		fmt.Fprintf(w, "  %d refused: %s\n", t.reasons[why], why)
	}
}

// progressEvery is how often a long import says how far it got.
const progressEvery = 10 * time.Second

// batchTimeout bounds one batch of an import, waits for the node's budget
// included (a phone's address may post 20 envelopes a second).
const batchTimeout = 2 * time.Minute

// importBundle posts a bundle's envelopes in batches, the node verifying
// each; it keeps going past refused envelopes and damaged stretches, and
// stops only when the node cannot store (full, stopping).
func (c *cli) importBundle(ctx context.Context, cl *api.Client, in io.Reader) error {
	r, err := bundle.NewReader(in)
	if err != nil {
		return err
	}
	t := &importTally{reasons: map[string]int64{}}
	var batch [][]byte
	size := 0
	post := func() error {
		if len(batch) == 0 {
			return nil
		}
		bctx, cancel := context.WithTimeout(ctx, batchTimeout)
		defer cancel()
		res, err := cl.PostBatch(bctx, batch)
		if err != nil {
			return err
		}
		for _, x := range res {
			t.add(x)
		}
		batch, size = batch[:0], 0
		return nil
	}
	var readErr error
	// A large bundle takes minutes on a kit (every envelope is verified):
	// say how far it got now and then.
	lastSaid := time.Now()
	for {
		if time.Since(lastSaid) >= progressEvery {
			lastSaid = time.Now()
			fmt.Fprintf(c.stderr, "%d envelopes read so far: %d new, %d already stored, %d refused\n", r.Stats().Entries, t.fresh, t.stored, t.refused)
		}
		env, err := r.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
		if len(batch) == api.MaxBatchEnvelopes || size+2+len(env) > api.MaxBatchBytes {
			if err := post(); err != nil {
				return c.importStopped(t, r.Stats(), err)
			}
		}
		batch = append(batch, env)
		size += 2 + len(env)
	}
	if err := post(); err != nil {
		return c.importStopped(t, r.Stats(), err)
	}
	st := r.Stats()
	fmt.Fprintf(c.stdout, "%d envelopes read from a bundle made %s\n", st.Entries, st.Created.UTC().Format(time.RFC3339))
	t.print(c.stdout)
	var problems []string
	if st.Damaged > 0 {
		lost := ""
		if st.Lost > 0 {
			lost = fmt.Sprintf(", %d envelopes lost", st.Lost)
		}
		problems = append(problems, fmt.Sprintf("the bundle is damaged: %d stretches, %d bytes skipped from byte %d%s",
			st.Damaged, st.DamagedBytes, st.FirstDamage, lost))
	}
	if readErr != nil {
		problems = append(problems, readErr.Error())
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s; every intact envelope was given to the node", strings.Join(problems, "; "))
	}
	return nil
}

// importStopped reports an import the node stopped: what it took so far,
// and that running it again skips what is stored.
func (c *cli) importStopped(t *importTally, st bundle.Stats, err error) error {
	fmt.Fprintf(c.stdout, "stopped after %d envelopes read\n", st.Entries)
	t.print(c.stdout)
	return fmt.Errorf("the node stopped the import: %w (run it again once the node can take more: what it holds already is skipped)", err)
}
