package lifeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"lifeline/api"
	"lifeline/radio/lora"
)

// errRestart ends a run of the node so that Run starts it again with the
// settings the operator's page saved.
var errRestart = errors.New("restarting with the operator's settings")

// settingsMinInterval is the least time between two changes from the page:
// each restarts the node.
const settingsMinInterval = api.SettingsRetryAfter * time.Second

// settingsTrial is how long a run with newly saved settings must last
// before they are kept: a run that fails sooner (kit mode on an address
// whose port 53 is taken) puts the previous settings back, so that a
// mistake on the page never leaves a kit that cannot start, and whose
// page is then out of reach.
const settingsTrial = 30 * time.Second

// trial is a change of settings on probation: what to put back.
type trial struct {
	prev    Settings
	hadFile bool
	saved   time.Time
}

// effectiveConfig is the node's config with the page's settings on top,
// validated, and the names of the settings applied.
func (n *Node) effectiveConfig() (Config, Settings, []string, error) {
	s, err := LoadSettings(n.cfg.DataDir)
	if err != nil {
		return Config{}, s, nil, err
	}
	cfg, applied := s.Apply(n.cfg)
	if err := cfg.Validate(); err != nil {
		// n.cfg was valid (New): the page's settings make it not.
		return Config{}, s, nil, fmt.Errorf("%w (with the settings of the operator's page, %v, from %s: change them there, or remove the file to run with the config file alone)",
			err, applied, filepath.Join(n.cfg.DataDir, SettingsFile))
	}
	return cfg, s, applied, nil
}

// revertTrial puts the previous settings back after a run with new ones
// failed within settingsTrial, and reports whether it did (Run then starts
// again).
func (n *Node) revertTrial(ctx context.Context, runErr error, began time.Time) bool {
	n.mu.Lock()
	tr := n.trial
	n.trial = nil
	n.mu.Unlock()
	if tr == nil || runErr == nil || ctx.Err() != nil || errors.Is(runErr, ErrWiped) || time.Since(began) > settingsTrial {
		return false
	}
	var err error
	if tr.hadFile {
		err = saveSettings(n.cfg.DataDir, tr.prev)
	} else if err = os.Remove(filepath.Join(n.cfg.DataDir, SettingsFile)); errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if err != nil {
		n.log.Error("the settings from the operator's page failed and the previous ones could not be put back", "failed", runErr, "err", err)
		return false
	}
	n.log.Error("the settings from the operator's page failed to start: the previous ones are back", "err", runErr)
	n.mu.Lock()
	n.settingsErr = fmt.Sprintf("the settings saved at %s did not start (%v): the previous ones are back", tr.saved.UTC().Format(time.RFC3339), runErr)
	n.mu.Unlock()
	return true
}

// settingsPage serves the operator's settings page (api.Settings) for one
// run of the node.
type settingsPage struct {
	n       *Node
	cur     Settings // the overlay this run applies
	eff     Config   // what this run runs with
	applied []string
	// fingerprint is the mesh key's, "" for an open mesh.
	fingerprint string
	restart     func()

	mu sync.Mutex
	// saved: a change is saved and the node restarts with it; further
	// changes wait for that.
	saved bool
}

func (p *settingsPage) Settings() api.SettingsView {
	return p.view(p.cur, p.eff, p.applied, p.fingerprint)
}

// view is the page's view of eff, the config with overlay s applied.
func (p *settingsPage) view(s Settings, eff Config, applied []string, fingerprint string) api.SettingsView {
	v := api.SettingsView{
		Name:        eff.Name,
		RadioRegion: DefaultRadioRegion,
		RadioPreset: lora.DefaultModem,
		Radios:      []api.RadioSetting{},
		Hubs:        append([]string{}, eff.Hubs...),
		MeshKey:     api.MeshKeyView{Set: eff.MeshKeyFile != "", Fingerprint: fingerprint},
		FromPage:    append([]string{}, applied...),
		CommandLine: []string{},
	}
	// Without radios, the page's choice (to come into force with the
	// first radio) or the default.
	if s.RadioRegion != nil {
		v.RadioRegion = *s.RadioRegion
	}
	if s.RadioPreset != nil {
		v.RadioPreset = *s.RadioPreset
	}
	for i, rc := range eff.Radios {
		r, _, _, _ := rc.resolve() // valid: Validate passed
		v.Radios = append(v.Radios, api.RadioSetting{Device: r.Device, Region: r.Region, Preset: r.Preset})
		if i == 0 {
			v.RadioRegion, v.RadioPreset = r.Region, r.Preset
		}
	}
	if k := eff.Kit; k != nil {
		v.Kit = api.KitSetting{On: true, Address: k.Address, Name: k.Name}
	}
	for _, name := range settingNames {
		if slices.Contains(p.n.cfg.CommandLine, name) {
			v.CommandLine = append(v.CommandLine, name)
		}
	}
	v.Choices.Regions = sortedKeys(lora.Regions)
	v.Choices.Presets = sortedKeys(lora.ModemPresets)
	p.n.mu.Lock()
	v.LastError = p.n.settingsErr
	p.n.mu.Unlock()
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// invalid is an error of the operator's change.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", api.ErrInvalidSettings, fmt.Sprintf(format, args...))
}

func (p *settingsPage) ChangeSettings(ctx context.Context, ch api.SettingsChange) (api.SettingsView, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.n.clock.Now()
	if p.saved {
		return api.SettingsView{}, fmt.Errorf("%w: the node is restarting with the last change", api.ErrSettingsTooSoon)
	}
	if d := now.Sub(p.cur.Saved); d >= 0 && d < settingsMinInterval {
		return api.SettingsView{}, fmt.Errorf("%w: wait %s between changes (each restarts the node)", api.ErrSettingsTooSoon, settingsMinInterval)
	}
	next := p.cur
	changed := func(name string) error {
		if slices.Contains(p.n.cfg.CommandLine, name) {
			return invalid("%s is set on the node's command line, which wins over this page: change it there", name)
		}
		return nil
	}
	for _, name := range ch.Reset {
		if !slices.Contains(settingNames, name) {
			return api.SettingsView{}, invalid("reset %q: not a setting of this page (%v)", name, settingNames)
		}
		switch name {
		case SettingName:
			next.Name = nil
		case SettingRadioRegion:
			next.RadioRegion = nil
		case SettingRadioPreset:
			next.RadioPreset = nil
		case SettingHubs:
			next.Hubs = nil
		case SettingMeshKey:
			next.MeshKey = nil
		case SettingKit:
			next.Kit = nil
		}
	}
	type field struct {
		name    string
		present bool
		set     func()
	}
	for _, f := range []field{
		{SettingName, ch.Name != nil, func() { next.Name = ch.Name }},
		{SettingRadioRegion, ch.RadioRegion != nil, func() { next.RadioRegion = ch.RadioRegion }},
		{SettingRadioPreset, ch.RadioPreset != nil, func() { next.RadioPreset = ch.RadioPreset }},
		{SettingHubs, ch.Hubs != nil, func() { hubs := slices.Clone(*ch.Hubs); next.Hubs = &hubs }},
		{SettingKit, ch.Kit != nil, func() {
			k := KitSetting{Off: true}
			if ch.Kit.On {
				k = KitSetting{Address: ch.Kit.Address, Name: ch.Kit.Name}
			}
			next.Kit = &k
		}},
		{SettingMeshKey, ch.MeshKey != nil, func() {}}, // below
	} {
		if !f.present {
			continue
		}
		if err := changed(f.name); err != nil {
			return api.SettingsView{}, err
		}
		f.set()
	}
	if ch.Hubs != nil {
		if len(*ch.Hubs) > maxHubs {
			return api.SettingsView{}, invalid("%d hubs: at most %d", len(*ch.Hubs), maxHubs)
		}
		for _, h := range *ch.Hubs {
			if len(h) > maxHubLen {
				return api.SettingsView{}, invalid("a hub's address is %d bytes: at most %d", len(h), maxHubLen)
			}
		}
	}
	var psk []byte
	if mk := ch.MeshKey; mk != nil {
		n := 0
		for _, b := range []bool{mk.Generate, mk.Key != "", mk.Off} {
			if b {
				n++
			}
		}
		if n != 1 {
			return api.SettingsView{}, invalid("mesh_key: give exactly one of generate, key and off")
		}
		var err error
		switch {
		case mk.Off:
			off := ""
			next.MeshKey = &off
		case mk.Generate:
			if psk, err = newMeshKey(); err != nil {
				return api.SettingsView{}, err
			}
		default:
			if psk, err = decodeMeshKeyText(mk.Key); err != nil {
				return api.SettingsView{}, invalid("mesh_key: %v", err)
			}
		}
		if psk != nil {
			name := pageMeshKeyName(psk)
			next.MeshKey = &name
		}
	}
	eff, applied := next.Apply(p.n.cfg)
	if err := eff.Validate(); err != nil {
		return api.SettingsView{}, invalid("%v", err)
	}
	if len(eff.Radios) == 0 && (next.RadioRegion != nil || next.RadioPreset != nil) {
		// For the radios configured later: a name that exists, and a
		// preset the region allows.
		rc := RadioConfig{Device: "a radio"}
		if next.RadioRegion != nil {
			rc.Region = *next.RadioRegion
		}
		if next.RadioPreset != nil {
			rc.Preset = *next.RadioPreset
		}
		if _, _, _, err := rc.resolve(); err != nil {
			return api.SettingsView{}, invalid("%v", err)
		}
	}

	// Valid: the key first, then the settings that name it.
	dir := p.n.cfg.DataDir
	var newKeyFile string
	if psk != nil {
		name, created, err := writePageMeshKey(dir, psk)
		if err != nil {
			return api.SettingsView{}, err
		}
		if created {
			newKeyFile = filepath.Join(dir, name)
		}
	}
	_, statErr := os.Stat(filepath.Join(dir, SettingsFile))
	next.Version, next.Saved = SettingsVersion, now
	if err := saveSettings(dir, next); err != nil {
		if newKeyFile != "" {
			err = errors.Join(err, destroySecretFile(newKeyFile))
		}
		return api.SettingsView{}, err
	}
	p.n.mu.Lock()
	p.n.trial = &trial{prev: p.cur, hadFile: statErr == nil, saved: now}
	p.n.settingsErr = ""
	p.n.mu.Unlock()
	p.saved = true
	p.n.log.Warn("settings changed on the operator's page: restarting with them", "settings", applied, "file", filepath.Join(dir, SettingsFile))

	fp := ""
	switch {
	case psk != nil:
		fp = MeshKeyFingerprint(psk)
	case eff.MeshKeyFile == p.eff.MeshKeyFile:
		fp = p.fingerprint
	case eff.MeshKeyFile != "":
		if k, err := LoadMeshKey(eff.MeshKeyFile); err == nil {
			fp = MeshKeyFingerprint(k)
		}
	}
	return p.view(next, eff, applied, fp), nil
}

func (p *settingsPage) Restart() { p.restart() }

// settingsLoop ends the run when the page saved a change (errRestart).
// Once the run has lasted settingsTrial, the settings it runs with are
// kept, and the mesh keys the page made that they no longer use are
// destroyed.
func (n *Node) settingsLoop(ctx context.Context, restart <-chan struct{}, keep string) error {
	n.mu.Lock()
	onTrial := n.trial != nil
	n.mu.Unlock()
	var kept <-chan time.Time
	if onTrial {
		t := time.NewTimer(settingsTrial)
		defer t.Stop()
		kept = t.C
	} else {
		n.removeStaleMeshKeys(keep)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-restart:
			return errRestart
		case <-kept:
			kept = nil
			n.mu.Lock()
			n.trial = nil
			n.mu.Unlock()
			n.removeStaleMeshKeys(keep)
		}
	}
}

func (n *Node) removeStaleMeshKeys(keep string) {
	if err := removeStalePageMeshKeys(n.cfg.DataDir, keep); err != nil {
		n.log.Warn("old mesh keys of the operator's page not destroyed", "err", err)
	}
}
