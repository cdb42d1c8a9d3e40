package qemuvirt

// What the UEFI entry (efi_arm64.s) keeps of the firmware's hand-over;
// all zero on a -kernel boot. It writes them before ExitBootServices, with
// the firmware's MMU on, and cleans them to the point of coherency before
// cpuinit runs with the MMU off.
var (
	efiImageHandle, efiSystemTable uint64
	efiRSDP, efiDTB                uint64 // the configuration table's
	// The memory map as GetMemoryMap wrote it, with the key that ended
	// the boot services.
	efiMemoryMap                       [efiMemoryMapSize]byte
	efiMapSize, efiMapKey, efiDescSize uint64
	efiDescVersion                     uint64
	efiText                            [efiTextMax + 1]uint16 // efiPrint's UTF-16 copy
	// The load options (the command line), and the protocol they come
	// from.
	efiCmdline     [efiCmdlineMax]byte
	efiCmdlineLen  uint64
	efiLoadedImage uint64
	efiClaimAddr   uint64 // AllocatePages' address, in and out
)

// EFI_LOADED_IMAGE_PROTOCOL_GUID (UEFI 2.10, 9.1), laid out as in memory:
// a literal, because the entry reads it before any Go code has run.
var efiLoadedImageGUID = [16]byte{0xa1, 0x31, 0x1b, 0x5b, 0x62, 0x95, 0xd2, 0x11, 0x8e, 0x3f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}

const (
	efiMemoryMapSize = 64 << 10 // a thousand descriptors and more
	efiTextMax       = 255
	efiCmdlineMax    = 1024
)

// What the UEFI entry says on the firmware's console when it returns to
// the firmware rather than boot.
var (
	efiNotEL2 = "bulkhead: the firmware started the hypervisor at EL1, not EL2: it needs EL2 " +
		"(under QEMU, -machine virtualization=on); returning EFI_UNSUPPORTED\r\n"
	efiNoMap = "bulkhead: GetMemoryMap failed; returning its status\r\n"
	efiNoRAM = "bulkhead: the firmware cannot give the hypervisor its RAM " +
		"(64 MiB from 0x40000000, around the image): returning AllocatePages' status\r\n"
)

// FromUEFI reports whether the firmware started the hypervisor through
// its UEFI entry, and the ACPI RSDP it found (0: none).
func FromUEFI() (ok bool, rsdp uint64) { return efiSystemTable != 0, efiRSDP }
