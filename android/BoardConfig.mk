# rsheap's board configuration: include it from the device's BoardConfig.mk, after setting
# RSHEAP_KO to the rsheap.ko built for the device's kernel (see README, "Adding rsheap to a
# device").

RSHEAP_DIR ?= vendor/rsheap

ifeq ($(RSHEAP_KO),)
$(error RSHEAP_KO must name the rsheap.ko built for this device's kernel)
endif

# Loaded from /vendor_dlkm (or /vendor) lib/modules at boot; depmod runs at build time.
BOARD_VENDOR_KERNEL_MODULES += $(RSHEAP_KO)

BOARD_VENDOR_SEPOLICY_DIRS += $(RSHEAP_DIR)/android/sepolicy

# The vendor_rsheap user and group.
TARGET_FS_CONFIG_GEN += $(RSHEAP_DIR)/android/config.fs

# Every HAL in the device manifest must match the framework compatibility matrix.
DEVICE_FRAMEWORK_COMPATIBILITY_MATRIX_FILE += $(RSHEAP_DIR)/android/framework_compatibility_matrix.xml
