namespace Nspawn.Build;

/// <summary>What <see cref="BtrfsStore.EnsureAsync"/> found or did.</summary>
internal enum BtrfsState { AlreadyBtrfs, MountedExisting, Created }
