namespace Nspawn.Build;

/// <summary>What <see cref="BtrfsStore.UnmountAsync"/> did.</summary>
internal enum UnmountResult { NotMounted, Unmounted, Busy }
