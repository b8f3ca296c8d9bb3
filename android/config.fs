# vendor_rsheap: the user and group rsheapd runs as, and the group that owns /dev/rsheap.
# Add this file to the device's TARGET_FS_CONFIG_GEN (rsheap.mk does).
[AID_VENDOR_RSHEAP]
value: 2950
