package qemuvirt

import (
	"encoding/binary"
	"os"
	"regexp"
	"strconv"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/efi"
)

// The parts of the UEFI tables the entry reads (UEFI 2.10, 4.2-4.4, 12.4),
// as the specification lays them out: pointers and UINTNs are 8 bytes.
type efiTableHeader struct {
	Signature                      uint64
	Revision, HeaderSize, CRC32, _ uint32
}

type efiSystemTableLayout struct {
	Hdr                           efiTableHeader
	FirmwareVendor                uint64
	FirmwareRevision              uint32
	ConsoleInHandle, ConIn        uint64
	ConsoleOutHandle, ConOut      uint64
	StandardErrorHandle, StdErr   uint64
	RuntimeServices, BootServices uint64
	NumberOfTableEntries          uint64
	ConfigurationTable            uint64
}

type efiBootServices struct {
	Hdr                                                    efiTableHeader
	RaiseTPL, RestoreTPL                                   uint64
	AllocatePages, FreePages, GetMemoryMap                 uint64
	AllocatePool, FreePool                                 uint64
	CreateEvent, SetTimer, WaitForEvent, SignalEvent       uint64
	CloseEvent, CheckEvent                                 uint64
	InstallProtocolInterface, ReinstallProtocolInterface   uint64
	UninstallProtocolInterface, HandleProtocol, Reserved   uint64
	RegisterProtocolNotify, LocateHandle, LocateDevicePath uint64
	InstallConfigurationTable                              uint64
	LoadImage, StartImage, Exit, UnloadImage               uint64
	ExitBootServices                                       uint64
}

type efiSimpleTextOutput struct{ Reset, OutputString uint64 }

type efiLoadedImageLayout struct {
	Revision                         uint32
	ParentHandle, SystemTable        uint64
	DeviceHandle, FilePath, Reserved uint64
	LoadOptionsSize                  uint32
	LoadOptions                      uint64
}

// efi_arm64.s's constants agree with the specification's layouts, the
// efi package's GUIDs, the layout and the buffers efi.go declares.
func TestEFIEntryConstants(t *testing.T) {
	src, err := os.ReadFile("efi_arm64.s")
	require.NoError(t, err)
	def := func(name string) uint64 {
		m := regexp.MustCompile(`#define ` + name + ` (0x[0-9a-f]+|\d+)`).FindSubmatch(src)
		require.NotNil(t, m, name)
		v, err := strconv.ParseUint(string(m[1]), 0, 64)
		require.NoError(t, err)
		return v
	}
	var st efiSystemTableLayout
	var bs efiBootServices
	var out efiSimpleTextOutput
	assert.Equal(t, uint64(unsafe.Offsetof(st.ConOut)), def("ST_CONOUT"))
	assert.Equal(t, uint64(unsafe.Offsetof(st.BootServices)), def("ST_BOOTSERVICES"))
	assert.Equal(t, uint64(unsafe.Offsetof(st.NumberOfTableEntries)), def("ST_NTABLES"))
	assert.Equal(t, uint64(unsafe.Offsetof(st.ConfigurationTable)), def("ST_TABLES"))
	assert.Equal(t, uint64(unsafe.Offsetof(bs.GetMemoryMap)), def("BS_GETMEMORYMAP"))
	assert.Equal(t, uint64(unsafe.Offsetof(bs.AllocatePages)), def("BS_ALLOCATEPAGES"))
	assert.Equal(t, uint64(HypRAMSize), def("HYPRAMSIZE"))
	assert.Equal(t, uint64(unsafe.Offsetof(bs.ExitBootServices)), def("BS_EXITBOOTSERVICES"))
	assert.Equal(t, uint64(unsafe.Offsetof(out.OutputString)), def("OUT_OUTPUTSTRING"))
	assert.Equal(t, uint64(unsafe.Offsetof(bs.HandleProtocol)), def("BS_HANDLEPROTOCOL"))
	var li efiLoadedImageLayout
	assert.Equal(t, uint64(unsafe.Offsetof(li.LoadOptionsSize)), def("LI_LOADOPTIONSSIZE"))
	assert.Equal(t, uint64(unsafe.Offsetof(li.LoadOptions)), def("LI_LOADOPTIONS"))
	assert.Equal(t, efi.MakeGUID(0x5b1b31a1, 0x9562, 0x11d2, [8]byte{0x8e, 0x3f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}), efi.GUID(efiLoadedImageGUID))
	assert.Equal(t, uint64(efiCmdlineMax), def("CMDLINE_MAX"))

	le := binary.LittleEndian
	assert.Equal(t, le.Uint64(efi.ACPI20TableGUID[:8]), def("GUID_ACPI20_LO"))
	assert.Equal(t, le.Uint64(efi.ACPI20TableGUID[8:]), def("GUID_ACPI20_HI"))
	assert.Equal(t, le.Uint64(efi.DTBTableGUID[:8]), def("GUID_DTB_LO"))
	assert.Equal(t, le.Uint64(efi.DTBTableGUID[8:]), def("GUID_DTB_HI"))

	assert.Equal(t, uint64(RAMBase), def("RAMBASE"))
	assert.Equal(t, uint64(TextBase), def("TEXTBASE"))
	assert.Equal(t, uint64(efiMemoryMapSize), def("MEMORY_MAP_SIZE"))
	assert.Equal(t, uint64(efiTextMax), def("TEXT_MAX"))
	assert.Len(t, efiText, efiTextMax+1, "room for the terminating NUL")
	for _, m := range []string{efiNotEL2, efiNoMap, efiNoRAM} {
		assert.LessOrEqual(t, len(m), efiTextMax, "efiPrint would cut %q", m)
	}
}
