package vendor.rsheap;

/** A range of a file to load into a buffer. */
@VintfStability
parcelable FileSegment {
    /** The file, open for reading. The broker reads it with its own file offset untouched. */
    ParcelFileDescriptor file;
    /** Where in the file the segment starts. */
    long fileOffset;
    /** Bytes to load; -1 loads up to the end of the file or of the buffer, whichever is first. */
    long length = -1;
    /** Where in the buffer the segment goes. */
    long bufferOffset;
}
