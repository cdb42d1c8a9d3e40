package containerinit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	ok := Spec{Args: []string{"sh"}, Cwd: "/", Env: []string{"A=1", "EMPTY="}}
	if err := ok.Check(); err != nil {
		t.Errorf("%+v: %v", ok, err)
	}
	for _, c := range []struct {
		s    Spec
		want string
	}{
		{Spec{Cwd: "/"}, "args is empty"},
		{Spec{Args: []string{""}, Cwd: "/"}, "args is empty"},
		{Spec{Args: []string{"sh"}, Cwd: "tmp"}, "not an absolute path"},
		{Spec{Args: []string{"sh"}, Cwd: "/", Env: []string{"A"}}, "not NAME=VALUE"},
	} {
		if err := c.s.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.s, err, c.want)
		}
	}
}

func TestSearchPath(t *testing.T) {
	if p := (&Spec{}).SearchPath(); p != DefaultPath {
		t.Errorf("no PATH: %q, want the default", p)
	}
	s := &Spec{Env: []string{"PATHX=no", "PATH=/a:/b", "PATH=/c"}}
	if p := s.SearchPath(); p != "/a:/b" {
		t.Errorf("SearchPath %q, want the first PATH", p)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"prog": 0o755, "data": 0o644} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	if p, err := lookPath("prog", "/", "/nonexistent:"+dir); err != nil || p != dir+"/prog" {
		t.Errorf("prog: %q, %v", p, err)
	}
	if p, err := lookPath("./prog", dir, ""); err != nil || p != dir+"/./prog" {
		t.Errorf("./prog from its directory: %q, %v", p, err)
	}
	for _, name := range []string{"data", "sub", "missing"} {
		if _, err := lookPath(name, "/", dir); err == nil {
			t.Errorf("%s: found, want not found", name)
		}
	}
	if _, err := lookPath(dir+"/data", "/", ""); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Errorf("a path to a file that is not executable: %v", err)
	}
}
