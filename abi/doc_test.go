package abi

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// docs/abi.md documents exactly the calls this package defines, with the
// same IDs and callers.
func TestDocMatchesPackage(t *testing.T) {
	doc, err := os.ReadFile("../docs/abi.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := regexp.MustCompile(`(?m)^### (\w+)\n- ID: `+"`"+`(0x[0-9A-Fa-f]+)`+"`"+`\n- Who: (.+)$`).FindAllStringSubmatch(string(doc), -1)
	documented := map[string]bool{}
	for _, s := range sections {
		name, who := s[1], s[3]
		id, _ := strconv.ParseUint(s[2], 0, 32)
		documented[name] = true
		var call *Call
		for i := range Calls {
			if Calls[i].Name == name {
				call = &Calls[i]
			}
		}
		if call == nil {
			t.Errorf("docs/abi.md documents %s, which the abi package does not define", name)
			continue
		}
		if uint32(id) != call.ID {
			t.Errorf("%s: docs say ID %#x, package says %#x", name, id, call.ID)
		}
		if call.Guest != strings.Contains(who, "guests") {
			t.Errorf("%s: docs say %q may call, package says guests: %v", name, who, call.Guest)
		}
	}
	for _, c := range Calls {
		if !documented[c.Name] {
			t.Errorf("%s (%#x) is not documented in docs/abi.md", c.Name, c.ID)
		}
	}
	for name, code := range map[string]int64{"SUCCESS": SUCCESS, "NOT_SUPPORTED": NOT_SUPPORTED,
		"NOT_REQUIRED": NOT_REQUIRED, "INVALID_PARAMETER": INVALID_PARAMETER, "DENIED": DENIED,
		"NO_MEMORY": NO_MEMORY, "BUSY": BUSY, "NEEDS_RESET": NEEDS_RESET} {
		if !strings.Contains(string(doc), fmt.Sprintf("| `%s` | %d |", name, code)) {
			t.Errorf("return code %s = %d is not in the table", name, code)
		}
		if CodeName(code) != name {
			t.Errorf("CodeName(%d) = %q, want %s", code, CodeName(code), name)
		}
	}
	if !strings.Contains(string(doc), fmt.Sprintf("Version %d.%d", VersionMajor, VersionMinor)) {
		t.Errorf("docs/abi.md does not state version %d.%d", VersionMajor, VersionMinor)
	}
	for _, p := range []struct {
		name string
		id   uint32
	}{{"PSCI_VERSION", PSCI_VERSION}, {"PSCI_FEATURES", PSCI_FEATURES}, {"PSCI_CPU_OFF", PSCI_CPU_OFF},
		{"PSCI_SYSTEM_OFF", PSCI_SYSTEM_OFF}, {"PSCI_SYSTEM_RESET", PSCI_SYSTEM_RESET},
		{"PSCI_CPU_ON", PSCI_CPU_ON}, {"PSCI_AFFINITY_INFO", PSCI_AFFINITY_INFO}, {"PSCI_CPU_SUSPEND", PSCI_CPU_SUSPEND}} {
		row := fmt.Sprintf("| `%s` | `0x%08X` |", p.name, p.id)
		if !strings.Contains(string(doc), row) {
			t.Errorf("PSCI table lacks %s", row)
		}
	}
}

// Function IDs follow SMCCC's layout.
func TestFunctionIDs(t *testing.T) {
	for _, c := range Calls {
		if c.ID&FastCall == 0 {
			t.Errorf("%s is not a fast call", c.Name)
		}
	}
	for _, id := range []uint32{CONSOLE_WRITE, EXIT, YIELD, VM_CREATE, VM_DONATE, VCPU_CREATE, VM_START, VM_STATUS, VM_WAIT, VM_DESTROY} {
		if owner := (id >> OwnerShift) & 0x3f; owner != OwnerVendorH || id&SMC64 == 0 {
			t.Errorf("%#x: owner %d, want vendor hypervisor service (6), SMC64", id, owner)
		}
	}
	doc, err := os.ReadFile("../docs/abi.md")
	if err != nil {
		t.Fatal(err)
	}
	if uid := fmt.Sprintf("`%08x %08x %08x %08x`", CallUID[0], CallUID[1], CallUID[2], CallUID[3]); !strings.Contains(string(doc), uid) {
		t.Errorf("docs/abi.md does not give the call UID %s", uid)
	}
	if Word(INVALID_PARAMETER) != 0xfffffffffffffffd {
		t.Errorf("Word(-3) = %#x", Word(INVALID_PARAMETER))
	}
}
