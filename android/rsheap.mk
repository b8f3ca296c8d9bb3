# rsheap's product configuration: inherit it from the device's product makefile,
# $(call inherit-product, vendor/rsheap/android/rsheap.mk).

# The broker (with its init .rc and VINTF fragment) and its configuration. Apps take the
# Java API as static_libs: ["rsheap-java"] with jni_libs: ["librsheap_jni"].
PRODUCT_PACKAGES += \
    rsheapd \
    rsheapd.toml

# rsheapctl, for debuggable builds.
PRODUCT_PACKAGES_DEBUG += \
    rsheapctl
